#include "gateway/proxy/http_common.h"
#include "base/counters.h"
#include "proto/forward.h"

unsigned http_fwd_opts(const struct conf_listener *cl)
{
    return (cl->forward_for ? FWD_FOR : 0) | (cl->forwarded ? FWD_FORWARDED : 0);
}

void http_limits_of(const struct conf_listener *cl, struct http_limits *lim)
{
    lim->max_line = cl->max_request_line;
    lim->max_head = cl->max_header_size;
    lim->max_headers = (uint16_t)cl->max_headers;
    lim->sess_header = cl->sess == SESS_HEADER ? cl->sess_name : NULL;
    lim->sess_header_len = (uint16_t)cl->sess_name_len;
}

void http_count_error(int status)
{
    counters->client_errors_total++;
    switch (status) {
    case 502: counters->http_502_total++; break;
    case 503: counters->http_503_total++; break;
    case 504: counters->http_504_total++; break;
    default:
        if (status < 500)
            counters->http_4xx_total++;
        else
            counters->http_5xx_other_total++;
    }
}
