#include "gateway/process/privileges.h"
#include "base/util.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int priv_drop(const char *user, char *err, size_t errlen)
{
    if (!user)
        return EG_OK;
    /* A blocking NSS lookup, but once, at start, before serving. */
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "user \"%s\": no such user", user);
        return EG_ERR;
    }
    if (getuid() == pw->pw_uid)
        return EG_OK;
    if (prctl(PR_SET_KEEPCAPS, 1) != 0 || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        snprintf(err, errlen, "user \"%s\": cannot switch to it: %s", user, strerror(errno));
        return EG_ERR;
    }
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{0}};
    data[0].effective = data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
    if (syscall(SYS_capset, &hdr, data) != 0) {
        snprintf(err, errlen, "user \"%s\": cannot keep CAP_NET_BIND_SERVICE: %s", user,
                 strerror(errno));
        return EG_ERR;
    }
    prctl(PR_SET_KEEPCAPS, 0);
    return EG_OK;
}
