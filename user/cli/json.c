// SPDX-License-Identifier: MIT
#include "json.h"

void json_init(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->first[0] = true;
	j->after_key = false;
}

/* Comma before a value or key, unless first in its container or after a key. */
static void sep(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
}

static void container_open(struct json *j, char c)
{
	sep(j);
	fputc(c, j->f);
	if (j->depth + 1 < JSON_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
}

static void container_close(struct json *j, char c)
{
	fputc(c, j->f);
	if (j->depth > 0)
		j->depth--;
}

void json_obj_begin(struct json *j) { container_open(j, '{'); }
void json_obj_end(struct json *j) { container_close(j, '}'); }
void json_arr_begin(struct json *j) { container_open(j, '['); }
void json_arr_end(struct json *j) { container_close(j, ']'); }

static void raw_str(struct json *j, const unsigned char *s, size_t n)
{
	fputc('"', j->f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\')
			fprintf(j->f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f) /* bytes, not text: keep the output pure ASCII */
			fprintf(j->f, "\\u%04x", c);
		else
			fputc(c, j->f);
	}
	fputc('"', j->f);
}

void json_key(struct json *j, const char *key)
{
	sep(j);
	raw_str(j, (const unsigned char *)key, __builtin_strlen(key));
	fputc(':', j->f);
	j->after_key = true;
}

void json_strn(struct json *j, const void *s, size_t n)
{
	sep(j);
	raw_str(j, s, n);
}

void json_str(struct json *j, const char *s)
{
	if (!s) { /* a name that does not exist: null, never a crash or a guess */
		json_null(j);
		return;
	}
	json_strn(j, s, __builtin_strlen(s));
}

void json_null(struct json *j)
{
	sep(j);
	fputs("null", j->f);
}

void json_int(struct json *j, long long v)
{
	sep(j);
	fprintf(j->f, "%lld", v);
}

void json_bool(struct json *j, bool v)
{
	sep(j);
	fputs(v ? "true" : "false", j->f);
}

void json_hex(struct json *j, const void *data, size_t n)
{
	const unsigned char *p = data;

	sep(j);
	fputc('"', j->f);
	for (size_t i = 0; i < n; i++)
		fprintf(j->f, "%02x", p[i]);
	fputc('"', j->f);
}

void json_kv_str(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_str(j, s);
}

void json_kv_int(struct json *j, const char *key, long long v)
{
	json_key(j, key);
	json_int(j, v);
}

void json_end(struct json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
}
