/* The control API's language: its URL scheme and JSON bodies, and the
 * records of operator state kept in Redis. Pure parsing, no state: what is
 * accepted here is well-formed; whether the datacenter or server exists is
 * for the caller to check.
 *
 *   GET    /control                               operator state, health, recent changes
 *   GET    /control/dcs/NAME                      one datacenter
 *   PUT    /control/dcs/NAME                      {"state": "drain"|"ready"|"down",
 *                                                  "drain_timeout": SECONDS}
 *   GET    /control/dcs/NAME/servers/ADDR         one server
 *   PUT    /control/dcs/NAME/servers/ADDR         {"state": ..., "weight": N|null}
 *   GET    /control/sessions/KEY                  {"dc", "home", "ttl_s", "source"}
 *   PUT    /control/sessions/KEY                  {"dc": NAME}: move it
 *   DELETE /control/sessions/KEY                  forget it
 *
 * ADDR and KEY are percent-decoded. */
#ifndef EG_PROTO_CONTROL_REQ_H
#define EG_PROTO_CONTROL_REQ_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_NAME_MAX 64         /* as CONF_NAME_MAX: 63 characters */
#define CTL_ADDR_MAX 64         /* "ip:port", as servers are named */
#define CTL_KEY_MAX 256         /* as AFFINITY_KEY_MAX */
#define CTL_ORIGIN_MAX 64
#define CTL_WEIGHT_MAX 1000
#define CTL_DRAIN_MAX 86400.0   /* a drain_timeout above a day is a typo */
#define CTL_BODY_MAX 4096

enum ctl_object { CTL_OVERVIEW, CTL_DC, CTL_SERVER, CTL_SESSION };
/* Operator states; the numbers are those of enum admin_state. */
enum ctl_state { CTL_READY, CTL_DRAIN, CTL_DOWN };
#define CTL_KEEP (-1)           /* state: not given */
#define CTL_WEIGHT_CONF (-1)    /* weight null: the configured one */
#define CTL_WEIGHT_KEEP (-2)    /* weight not given */

struct ctl_cmd {
    enum ctl_object object;
    int method;                 /* enum http_method: GET (HEAD), PUT or DELETE */
    char dc[CTL_NAME_MAX];
    char server[CTL_ADDR_MAX];
    char key[CTL_KEY_MAX + 1];
    size_t key_len;
    int state;                  /* PUT: enum ctl_state or CTL_KEEP */
    int weight;                 /* PUT server: 0..1000, CTL_WEIGHT_CONF or CTL_WEIGHT_KEEP */
    double drain_timeout;       /* PUT dc drain: seconds; < 0: the configured drain_timeout */
    char to_dc[CTL_NAME_MAX];   /* PUT session: where it goes */
};

/* Whether PATH (N bytes, without the query) belongs to the control API. */
bool ctl_path_claimed(const char *path, size_t n);
/* Whether METHOD (enum http_method) changes state: it then needs the token. */
bool ctl_method_changes(int method);
/* Parses a request: 0 with CMD filled, else the status to answer (400,
 * 404, 405, 411, 413) with ERR saying why. */
int ctl_parse(int method, const char *path, size_t plen, const char *body, size_t blen,
              struct ctl_cmd *cmd, char *err, size_t errlen);

/* "ready", "drain" or "down" to enum ctl_state, -1 otherwise. */
int ctl_state_parse(const char *s);
/* A datacenter name: 1 to 63 letters, digits, '-', '_', '.'. */
bool ctl_name_valid(const char *s, size_t n);

/* ---- operator state in Redis ---- */

/* A field of the state hash: "dc:NAME" or "srv:NAME:ADDR". */
struct ctl_field {
    char dc[CTL_NAME_MAX];
    char server[CTL_ADDR_MAX];  /* "" for a datacenter */
};
/* A field's value: {"state": ..., "weight": N|null, "since": T, "until": T,
 * "origin": "..."}, times in seconds since the epoch. */
struct ctl_record {
    int state;
    int weight;                 /* CTL_WEIGHT_CONF or 0..1000 */
    double since, until;        /* drain: started, pinned sessions leave at until */
    char origin[CTL_ORIGIN_MAX];
};

int ctl_parse_field(const char *s, size_t n, struct ctl_field *f);
void ctl_format_field(const struct ctl_field *f, char *buf, size_t len);
int ctl_parse_record(const char *s, size_t n, struct ctl_record *r);

#endif
