/* Durations and sizes as the configuration writes them. A number without a
 * unit is refused: `interval 500` meant seconds to some and milliseconds to
 * others (HAProxy). Only 0, the same in every unit, may go without one. */
#include "conf/values.h"
#include "conf/conf.h"
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DURATION_MAX (365 * 86400.0)

static const struct unit {
    const char *name;
    double sec;
} duration_units[] = {{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}, {"ms", 0.001}};

static const struct size_unit {
    char name;
    unsigned long long bytes;
} size_units[] = {{'g', 1ULL << 30}, {'m', 1ULL << 20}, {'k', 1ULL << 10}, {'b', 1}};

bool conf_value_unitless(const char *s)
{
    if (strcmp(s, "0") == 0 || *s == '\0')
        return false;
    return strspn(s, "0123456789.") == strlen(s);
}

int conf_parse_duration(const char *s, double *sec)
{
    /* Digits, an optional fraction, a unit: nothing strtod would also take
     * (hexadecimal, exponents, inf). */
    if (strcmp(s, "0") == 0) {
        *sec = 0;
        return EG_OK;
    }
    const char *end = s;
    while (isdigit((unsigned char)*end))
        end++;
    if (end == s || end - s > 9)
        return EG_ERR;
    if (*end == '.') {
        const char *frac = ++end;
        while (isdigit((unsigned char)*end))
            end++;
        if (end == frac || end - frac > 6)
            return EG_ERR;
    }
    for (size_t i = 0; i < ARRAY_LEN(duration_units); i++)
        if (strcmp(end, duration_units[i].name) == 0) {
            double v = strtod(s, NULL) * duration_units[i].sec;
            if (v > DURATION_MAX)
                return EG_ERR;
            *sec = v;
            return EG_OK;
        }
    return EG_ERR;
}

int conf_parse_size(const char *s, size_t *bytes)
{
    if (strcmp(s, "0") == 0) {
        *bytes = 0;
        return EG_OK;
    }
    if (!isdigit((unsigned char)*s))
        return EG_ERR;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end[0] == '\0' || end[1] != '\0')
        return EG_ERR;
    for (size_t i = 0; i < ARRAY_LEN(size_units); i++)
        if (tolower((unsigned char)*end) == size_units[i].name) {
            if (v > (1ULL << 40) / size_units[i].bytes)
                return EG_ERR;
            *bytes = (size_t)(v * size_units[i].bytes);
            return EG_OK;
        }
    return EG_ERR;
}

int conf_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s) && *s != '-')
        return EG_ERR;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return EG_ERR;
    *out = v;
    return EG_OK;
}

/* "WHOLE.FRACTION" with the fraction's trailing zeros dropped. */
static void format_fraction(char *buf, size_t len, long long whole, long long millionths,
                            const char *unit)
{
    char frac[8];
    snprintf(frac, sizeof(frac), "%06lld", millionths);
    size_t n = strlen(frac);
    while (n > 1 && frac[n - 1] == '0')
        frac[--n] = '\0';
    snprintf(buf, len, "%lld.%s%s", whole, frac, unit);
}

/* Durations are kept to the nanosecond a configuration can express
 * ("0.000001ms"): whole milliseconds take the largest unit that keeps them
 * whole, anything finer is a fraction of milliseconds, or of seconds when
 * the milliseconds would not fit the 9 digits a duration may have (only
 * fractions of minutes come there, all whole microseconds). Each form parses
 * back to the same value. */
void conf_format_duration(double sec, char *buf, size_t len)
{
    long long ns = llround(sec * 1e9);
    if (ns == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    if (ns % 1000000 == 0) {
        long long ms = ns / 1000000;
        for (size_t i = 0; i < ARRAY_LEN(duration_units); i++) {
            long long per = llround(duration_units[i].sec * 1000);
            if (ms % per == 0) {
                snprintf(buf, len, "%lld%s", ms / per, duration_units[i].name);
                return;
            }
        }
    }
    if (ns < 1000000000LL * 1000000)
        format_fraction(buf, len, ns / 1000000, ns % 1000000, "ms");
    else
        format_fraction(buf, len, ns / 1000000000, ns / 1000 % 1000000, "s");
}

void conf_format_size(size_t bytes, char *buf, size_t len)
{
    if (bytes == 0) {
        snprintf(buf, len, "0");
        return;
    }
    for (size_t i = 0; i < ARRAY_LEN(size_units); i++)
        if (bytes % size_units[i].bytes == 0) {
            snprintf(buf, len, "%" PRIu64 "%c", (uint64_t)(bytes / size_units[i].bytes),
                     size_units[i].name);
            return;
        }
}
