/* Values of directives: parsing durations, sizes and integers, and writing
 * them back the way a person would (for -T and the reference). */
#ifndef EG_CONF_VALUES_H
#define EG_CONF_VALUES_H

#include <stdbool.h>
#include <stddef.h>

/* Digits only (a fraction included) other than a plain 0: a number that
 * needed a unit. */
bool conf_value_unitless(const char *s);
int conf_parse_long(const char *s, long min, long max, long *out);
/* 1.5 -> "1500ms", 90 -> "90s", 3600 -> "1h": the largest unit that keeps
 * the value whole. */
void conf_format_duration(double sec, char *buf, size_t len);
void conf_format_size(size_t bytes, char *buf, size_t len);

#endif
