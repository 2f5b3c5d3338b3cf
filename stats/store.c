/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "store.h"

const char *store_role_name(enum store_role role)
{
	return role == STORE_ROLE_CLIENT ? "client" : "server";
}

/* ---- decoding ---------------------------------------------------------- */

static int bad(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int get_string(const char *field, const json_t *v, char *out,
		      size_t cap, bool truncate, char *err, size_t err_len)
{
	const char *s;
	size_t len;

	if (!json_is_string(v))
		return bad(err, err_len, "field '%s' must be a string", field);
	s = json_string_value(v);
	len = json_string_length(v);
	if (strlen(s) != len)
		return bad(err, err_len, "field '%s' contains a NUL character",
			   field);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20)
			return bad(err, err_len,
				   "field '%s' contains a control character",
				   field);
	if (len >= cap) {
		if (!truncate)
			return bad(err, err_len,
				   "field '%s' is longer than %zu bytes", field,
				   cap - 1);
		len = cap - 1;
		/* Cut on a UTF-8 boundary: never in the middle of a character. */
		while (len && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

static int get_count(const char *field, const json_t *v, int64_t *out,
		     char *err, size_t err_len)
{
	if (!json_is_integer(v))
		return bad(err, err_len, "field '%s' must be an integer", field);
	if (json_integer_value(v) < 0)
		return bad(err, err_len, "field '%s' must not be negative",
			   field);
	*out = json_integer_value(v);
	return 0;
}

static int get_reasons(const char *field, const json_t *v,
		       struct store_reason *out, unsigned *n, char *err,
		       size_t err_len)
{
	const char *key;
	json_t *count;

	if (!json_is_object(v))
		return bad(err, err_len,
			   "field '%s' must be an object of reason: count",
			   field);
	*n = 0;
	json_object_foreach((json_t *)v, key, count) {
		struct store_reason *r;

		if (*n == STORE_REASONS_MAX)
			return bad(err, err_len,
				   "field '%s' has more than %d reasons", field,
				   STORE_REASONS_MAX);
		r = &out[*n];
		if (strlen(key) >= sizeof(r->name) || !key[0])
			return bad(err, err_len,
				   "field '%s' has a reason name that is empty or longer than %zu bytes",
				   field, sizeof(r->name) - 1);
		for (const char *c = key; *c; c++)
			if ((unsigned char)*c < 0x20)
				return bad(err, err_len,
					   "field '%s' has a reason name with a control character",
					   field);
		if (!json_is_integer(count) || json_integer_value(count) < 0)
			return bad(err, err_len,
				   "field '%s.%s' must be a non-negative integer",
				   field, key);
		strcpy(r->name, key);
		r->count = json_integer_value(count);
		(*n)++;
	}
	return 0;
}

static int get_latency(const json_t *v, int64_t lat[4], char *err,
		       size_t err_len)
{
	static const char *const keys[] = { "p50", "p90", "p99", "max" };
	const char *key;
	json_t *val;

	if (!json_is_object(v))
		return bad(err, err_len,
			   "field 'latencyUs' must be an object with p50, p90, p99, max");
	json_object_foreach((json_t *)v, key, val) {
		for (size_t i = 0; i < 4; i++) {
			if (strcasecmp(key, keys[i]))
				continue;
			if (!json_is_integer(val) || json_integer_value(val) < 0)
				return bad(err, err_len,
					   "field 'latencyUs.%s' must be a non-negative integer",
					   keys[i]);
			lat[i] = json_integer_value(val);
		}
	}
	return 0;
}

static int decode_field(const char *key, const json_t *v, struct report *r,
			int *name_rank, bool *have_conns, bool *have_role,
			char *err, size_t err_len)
{
	if (!strcasecmp(key, "role")) {
		const char *s = json_string_value(v);

		if (!json_is_string(v) ||
		    (strcasecmp(s, "server") && strcasecmp(s, "client")))
			return bad(err, err_len,
				   "field 'role' must be \"server\" or \"client\"");
		r->role = strcasecmp(s, "client") ? STORE_ROLE_SERVER
						  : STORE_ROLE_CLIENT;
		*have_role = true;
		return 0;
	}
	if (!strcasecmp(key, "name") || !strcasecmp(key, "machineName")) {
		int rank = strcasecmp(key, "name") ? 1 : 2;
		int ret;

		/* "name" wins over the compat "machineName" when both come. */
		if (*name_rank > rank)
			return 0;
		ret = get_string(key, v, r->name, sizeof(r->name), false, err,
				 err_len);
		if (ret)
			return ret;
		if (!r->name[0])
			return bad(err, err_len, "field '%s' must not be empty",
				   key);
		*name_rank = rank;
		return 0;
	}
	if (!strcasecmp(key, "connections") || !strcasecmp(key, "clients")) {
		*have_conns = true;
		return get_count(key, v, &r->connections, err, err_len);
	}
	if (!strcasecmp(key, "pod"))
		return get_string("pod", v, r->pod, sizeof(r->pod), false,
				  err, err_len);
	if (!strcasecmp(key, "namespace"))
		return get_string("namespace", v, r->namespace_,
				  sizeof(r->namespace_), false, err, err_len);
	if (!strcasecmp(key, "node"))
		return get_string("node", v, r->node, sizeof(r->node), false,
				  err, err_len);
	if (!strcasecmp(key, "backend"))
		return get_string("backend", v, r->backend, sizeof(r->backend),
				  false, err, err_len);
	if (!strcasecmp(key, "version"))
		return get_string("version", v, r->version, sizeof(r->version),
				  false, err, err_len);
	if (!strcasecmp(key, "diagnosis"))
		return get_string("diagnosis", v, r->diagnosis,
				  sizeof(r->diagnosis), true, err, err_len);
	if (!strcasecmp(key, "target")) {
		r->has |= REPORT_HAS_TARGET;
		return get_count("target", v, &r->target, err, err_len);
	}
	if (!strcasecmp(key, "keepalives")) {
		r->has |= REPORT_HAS_KEEPALIVES;
		return get_count("keepalives", v, &r->keepalives, err, err_len);
	}
	if (!strcasecmp(key, "rssBytes")) {
		r->has |= REPORT_HAS_RSS;
		return get_count("rssBytes", v, &r->rss_bytes, err, err_len);
	}
	if (!strcasecmp(key, "startTime")) {
		r->has |= REPORT_HAS_START;
		return get_count("startTime", v, &r->start_time, err, err_len);
	}
	if (!strcasecmp(key, "connectRate")) {
		double d;

		if (!json_is_number(v))
			return bad(err, err_len,
				   "field 'connectRate' must be a number");
		d = json_number_value(v);
		if (!isfinite(d) || d < 0)
			return bad(err, err_len,
				   "field 'connectRate' must not be negative");
		r->connect_rate = d;
		r->has |= REPORT_HAS_RATE;
		return 0;
	}
	if (!strcasecmp(key, "latencyUs")) {
		r->has |= REPORT_HAS_LATENCY;
		return get_latency(v, r->latency_us, err, err_len);
	}
	if (!strcasecmp(key, "failures"))
		return get_reasons("failures", v, r->failures, &r->nr_failures,
				   err, err_len);
	if (!strcasecmp(key, "drops"))
		return get_reasons("drops", v, r->drops, &r->nr_drops, err,
				   err_len);
	return 0;	/* unknown fields are ignored */
}

int store_decode_report(const char *body, size_t len, struct report *out,
			char *err, size_t err_len)
{
	bool have_conns = false, have_role = false;
	int name_rank = 0;
	json_error_t jerr;
	const char *key;
	json_t *root, *v;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	root = json_loadb(body, len, 0, &jerr);
	if (!root)
		return bad(err, err_len, "invalid JSON at line %d column %d: %s",
			   jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		ret = bad(err, err_len, "the report must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (json_is_null(v))
			continue;	/* null means "not known": absent */
		ret = decode_field(key, v, out, &name_rank, &have_conns,
				   &have_role, err, err_len);
		if (ret)
			goto out;
	}
	if (!name_rank) {
		ret = bad(err, err_len,
			  "field 'name' is missing (send \"name\" or \"machineName\")");
		goto out;
	}
	if (!have_conns) {
		ret = bad(err, err_len,
			  "field 'connections' is missing (send \"connections\" or \"clients\")");
		goto out;
	}
	if (!have_role)
		out->has |= REPORT_COMPAT;
out:
	json_decref(root);
	return ret;
}

/* ---- the table --------------------------------------------------------- */

static uint32_t key_hash(enum store_role role, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)role;

	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		h ^= *c;
		h *= 16777619u;
	}
	return h;
}

static bool key_eq(const struct store_row *row, enum store_role role,
		   const char *name)
{
	return row->r.role == role && !strcmp(row->r.name, name);
}

/* The index position that holds (role, name) or the free one to use. */
static uint32_t index_find(const struct store *s, enum store_role role,
			   const char *name)
{
	uint32_t i = key_hash(role, name) & s->index_mask;

	while (s->index[i] &&
	       !key_eq(&s->rows[s->index[i] - 1], role, name))
		i = (i + 1) & s->index_mask;
	return i;
}

static int index_resize(struct store *s, uint32_t size)
{
	uint32_t *index = calloc(size, sizeof(*index));

	if (!index)
		return -ENOMEM;
	free(s->index);
	s->index = index;
	s->index_mask = size - 1;
	for (uint32_t r = 0; r < s->nr_rows; r++) {
		uint32_t i = key_hash(s->rows[r].r.role, s->rows[r].r.name) &
			     s->index_mask;

		while (s->index[i])
			i = (i + 1) & s->index_mask;
		s->index[i] = r + 1;
	}
	return 0;
}

/* Linear-probing removal by backward shift: no tombstones to clean up. */
static void index_remove(struct store *s, uint32_t i)
{
	uint32_t j = i;

	s->index[i] = 0;
	for (;;) {
		uint32_t home;

		j = (j + 1) & s->index_mask;
		if (!s->index[j])
			return;
		home = key_hash(s->rows[s->index[j] - 1].r.role,
				s->rows[s->index[j] - 1].r.name) & s->index_mask;
		/* Move j back into the hole at i unless its home lies
		 * cyclically in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			s->index[i] = s->index[j];
			s->index[j] = 0;
			i = j;
		}
	}
}

int store_init(struct store *s, uint64_t stale_ms, uint64_t expire_ms,
	       uint32_t max_rows)
{
	memset(s, 0, sizeof(*s));
	s->stale_ms = stale_ms;
	s->expire_ms = expire_ms;
	s->max_rows = max_rows;
	return index_resize(s, 64);
}

void store_free(struct store *s)
{
	free(s->rows);
	free(s->index);
	s->rows = NULL;
	s->index = NULL;
}

int store_apply(struct store *s, const struct report *r, uint64_t now_ms,
		uint64_t mono_ms)
{
	uint32_t i = index_find(s, r->role, r->name);
	struct store_row *row;

	if (!s->index[i]) {
		if (s->nr_rows == s->max_rows)
			return -ENOSPC;
		if (s->nr_rows == s->cap_rows) {
			uint32_t cap = s->cap_rows ? s->cap_rows * 2 : 16;
			struct store_row *rows;

			rows = realloc(s->rows, (size_t)cap * sizeof(*rows));
			if (!rows)
				return -ENOMEM;
			s->rows = rows;
			s->cap_rows = cap;
		}
		/* Keep the index at most half full. */
		if ((s->nr_rows + 1) * 2 > s->index_mask + 1) {
			if (index_resize(s, (s->index_mask + 1) * 2) < 0)
				return -ENOMEM;
			i = index_find(s, r->role, r->name);
		}
		row = &s->rows[s->nr_rows];
		memset(row, 0, sizeof(*row));
		row->first_mono_ms = mono_ms;
		s->index[i] = ++s->nr_rows;
	} else {
		row = &s->rows[s->index[i] - 1];
		/* A restart (new start time) starts the row's life over. */
		if ((r->has & REPORT_HAS_START) &&
		    (row->r.has & REPORT_HAS_START) &&
		    r->start_time != row->r.start_time) {
			row->first_mono_ms = mono_ms;
			row->reports = 0;
		}
	}
	row->r = *r;
	row->updated_ms = now_ms;
	row->seen_mono_ms = mono_ms;
	row->reports++;
	s->version++;
	return 0;
}

static void remove_row(struct store *s, uint32_t r)
{
	uint32_t last = s->nr_rows - 1;

	index_remove(s, index_find(s, s->rows[r].r.role, s->rows[r].r.name));
	if (r != last) {
		uint32_t i = index_find(s, s->rows[last].r.role,
					s->rows[last].r.name);

		s->rows[r] = s->rows[last];
		s->index[i] = r + 1;
	}
	s->nr_rows--;
	s->version++;
}

unsigned store_expire(struct store *s, uint64_t mono_ms)
{
	unsigned n = 0;

	for (uint32_t r = 0; r < s->nr_rows;) {
		if (mono_ms - s->rows[r].seen_mono_ms >= s->expire_ms) {
			remove_row(s, r);	/* moves another row into r */
			n++;
		} else {
			r++;
		}
	}
	return n;
}

bool store_row_stale(const struct store *s, const struct store_row *row,
		     uint64_t mono_ms)
{
	return mono_ms - row->seen_mono_ms >= s->stale_ms;
}

void store_totals(const struct store *s, uint64_t mono_ms,
		  struct store_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (uint32_t r = 0; r < s->nr_rows; r++) {
		const struct store_row *row = &s->rows[r];

		/* A stale row's count is a guess: shown, not added up. */
		if (store_row_stale(s, row, mono_ms)) {
			t->stale++;
			continue;
		}
		if (row->r.role == STORE_ROLE_CLIENT) {
			t->clients++;
			t->client_connections += row->r.connections;
		} else {
			t->servers++;
			t->connections += row->r.connections;
		}
	}
}

void store_sample(struct store *s, uint64_t now_ms, uint64_t mono_ms)
{
	struct store_totals t;
	struct store_sample *smp;
	uint32_t pos;

	store_totals(s, mono_ms, &t);
	pos = (s->history_head + s->history_len) % STORE_HISTORY;
	if (s->history_len == STORE_HISTORY)
		s->history_head = (s->history_head + 1) % STORE_HISTORY;
	else
		s->history_len++;
	smp = &s->history[pos];
	smp->t_ms = now_ms;
	smp->connections = t.connections;
	smp->client_connections = t.client_connections;
}

const struct store_sample *store_history_at(const struct store *s, uint32_t i)
{
	return &s->history[(s->history_head + i) % STORE_HISTORY];
}
