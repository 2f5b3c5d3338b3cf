/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "render.h"

static const char *const latency_keys[4] = { "p50", "p90", "p99", "max" };
static const char *const latency_quantiles[4] = { "0.5", "0.9", "0.99", "1" };

static void iso_time(char *buf, size_t len, uint64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ms % 1000));
}

static void json_key_str(struct outbuf *o, const char *key, const char *val)
{
	outbuf_printf(o, ",\"%s\":", key);
	outbuf_json_str(o, val);
}

static void json_reasons(struct outbuf *o, const char *key,
			 const struct store_reason *r, unsigned n)
{
	outbuf_printf(o, ",\"%s\":{", key);
	for (unsigned i = 0; i < n; i++) {
		if (i)
			outbuf_add(o, ",", 1);
		outbuf_json_str(o, r[i].name);
		outbuf_printf(o, ":%" PRId64, r[i].count);
	}
	outbuf_add(o, "}", 1);
}

static void render_row(struct outbuf *o, const struct store *s,
		       const struct store_row *row, uint64_t mono_ms)
{
	const struct report *r = &row->r;
	char when[40];

	iso_time(when, sizeof(when), row->updated_ms);
	outbuf_str(o, "{\"machineName\":");
	outbuf_json_str(o, r->name);
	outbuf_printf(o, ",\"clients\":%" PRId64 ",\"lastUpdated\":\"%s\"",
		      r->connections, when);
	json_key_str(o, "name", r->name);
	outbuf_printf(o, ",\"role\":\"%s\",\"connections\":%" PRId64
		      ",\"stale\":%s,\"ageSeconds\":%.1f,\"reports\":%" PRIu64,
		      store_role_name(r->role), r->connections,
		      store_row_stale(s, row, mono_ms) ? "true" : "false",
		      (double)(mono_ms - row->seen_mono_ms) / 1000.0,
		      row->reports);
	if (r->has & REPORT_COMPAT)
		outbuf_str(o, ",\"compat\":true");
	if (r->pod[0])
		json_key_str(o, "pod", r->pod);
	if (r->namespace_[0])
		json_key_str(o, "namespace", r->namespace_);
	if (r->node[0])
		json_key_str(o, "node", r->node);
	if (r->backend[0])
		json_key_str(o, "backend", r->backend);
	if (r->version[0])
		json_key_str(o, "version", r->version);
	if (r->diagnosis[0])
		json_key_str(o, "diagnosis", r->diagnosis);
	if (r->has & REPORT_HAS_TARGET)
		outbuf_printf(o, ",\"target\":%" PRId64, r->target);
	if (r->has & REPORT_HAS_RATE)
		outbuf_printf(o, ",\"connectRate\":%.1f", r->connect_rate);
	if (r->has & REPORT_HAS_KEEPALIVES)
		outbuf_printf(o, ",\"keepalives\":%" PRId64, r->keepalives);
	if (r->has & REPORT_HAS_RSS)
		outbuf_printf(o, ",\"rssBytes\":%" PRId64, r->rss_bytes);
	if (r->has & REPORT_HAS_START)
		outbuf_printf(o, ",\"startTime\":%" PRId64, r->start_time);
	if (r->has & REPORT_HAS_LATENCY) {
		outbuf_str(o, ",\"latencyUs\":{");
		for (int i = 0; i < 4; i++)
			outbuf_printf(o, "%s\"%s\":%" PRId64, i ? "," : "",
				      latency_keys[i], r->latency_us[i]);
		outbuf_add(o, "}", 1);
	}
	if (r->nr_failures)
		json_reasons(o, "failures", r->failures, r->nr_failures);
	if (r->nr_drops)
		json_reasons(o, "drops", r->drops, r->nr_drops);
	outbuf_add(o, "}", 1);
}

static void render_rows(struct outbuf *o, const struct store *s,
			uint64_t mono_ms)
{
	outbuf_add(o, "[", 1);
	for (uint32_t i = 0; i < s->nr_rows; i++) {
		if (i)
			outbuf_add(o, ",", 1);
		render_row(o, s, &s->rows[i], mono_ms);
	}
	outbuf_add(o, "]", 1);
}

void render_list(struct outbuf *o, const struct store *s, uint64_t now_ms,
		 uint64_t mono_ms)
{
	(void)now_ms;
	render_rows(o, s, mono_ms);
	outbuf_add(o, "\n", 1);
}

static void render_sample(struct outbuf *o, const struct store_sample *smp)
{
	outbuf_printf(o, "{\"t\":%" PRIu64 ",\"connections\":%" PRId64
		      ",\"clientConnections\":%" PRId64 "}",
		      smp->t_ms, smp->connections, smp->client_connections);
}

void render_state(struct outbuf *o, const struct store *s,
		  const struct render_self *self, uint64_t now_ms,
		  uint64_t mono_ms)
{
	struct store_totals t;

	store_totals(s, mono_ms, &t);
	outbuf_printf(o, "{\"service\":{\"version\":\"%s\",\"backend\":\"%s\","
		      "\"staleSeconds\":%.1f,\"expireSeconds\":%.1f,"
		      "\"reportsAccepted\":%" PRIu64 ",\"reportsRejected\":%" PRIu64
		      "},\"now\":%" PRIu64,
		      RINGHOLD_VERSION, self->backend,
		      (double)s->stale_ms / 1000.0,
		      (double)s->expire_ms / 1000.0,
		      self->reports_ok, self->reports_rejected, now_ms);
	outbuf_printf(o, ",\"totals\":{\"servers\":%u,\"clients\":%u,"
		      "\"stale\":%u,\"reporters\":%u,\"connections\":%" PRId64
		      ",\"clientConnections\":%" PRId64 "}",
		      t.servers, t.clients, t.stale, (unsigned)s->nr_rows,
		      t.connections, t.client_connections);
	outbuf_str(o, ",\"reporters\":");
	render_rows(o, s, mono_ms);
	if (s->history_len) {
		outbuf_str(o, ",\"sample\":");
		render_sample(o, store_history_at(s, s->history_len - 1));
	}
	outbuf_add(o, "}", 1);
}

void render_history(struct outbuf *o, const struct store *s)
{
	outbuf_add(o, "[", 1);
	for (uint32_t i = 0; i < s->history_len; i++) {
		if (i)
			outbuf_add(o, ",", 1);
		render_sample(o, store_history_at(s, i));
	}
	outbuf_add(o, "]", 1);
}

/* ---- Prometheus text format ------------------------------------------- */

static void metric_head(struct outbuf *o, const char *name, const char *type,
			const char *help)
{
	outbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		      type);
}

static void row_labels(struct outbuf *o, const struct report *r)
{
	outbuf_printf(o, "{role=\"%s\",name=\"", store_role_name(r->role));
	outbuf_label(o, r->name);
	outbuf_str(o, "\",pod=\"");
	outbuf_label(o, r->pod);
	outbuf_str(o, "\",namespace=\"");
	outbuf_label(o, r->namespace_);
	outbuf_str(o, "\",node=\"");
	outbuf_label(o, r->node);
	outbuf_str(o, "\"");
}

static void per_row_int(struct outbuf *o, const struct store *s,
			const char *name, const char *type, const char *help,
			unsigned flag, size_t offset)
{
	bool any = false;

	for (uint32_t i = 0; i < s->nr_rows; i++) {
		const struct store_row *row = &s->rows[i];
		int64_t v;

		if (flag && !(row->r.has & flag))
			continue;
		if (!any)
			metric_head(o, name, type, help);
		any = true;
		memcpy(&v, (const char *)&row->r + offset, sizeof(v));
		outbuf_str(o, name);
		row_labels(o, &row->r);
		outbuf_printf(o, "} %" PRId64 "\n", v);
	}
}

static void per_row_reasons(struct outbuf *o, const struct store *s,
			    const char *name, const char *help, bool drops)
{
	bool any = false;

	for (uint32_t i = 0; i < s->nr_rows; i++) {
		const struct report *r = &s->rows[i].r;
		const struct store_reason *rs = drops ? r->drops : r->failures;
		unsigned n = drops ? r->nr_drops : r->nr_failures;

		for (unsigned k = 0; k < n; k++) {
			if (!any)
				metric_head(o, name, "counter", help);
			any = true;
			outbuf_str(o, name);
			row_labels(o, r);
			outbuf_str(o, ",reason=\"");
			outbuf_label(o, rs[k].name);
			outbuf_printf(o, "\"} %" PRId64 "\n", rs[k].count);
		}
	}
}

void render_metrics(struct outbuf *o, const struct store *s,
		    const struct render_self *self, uint64_t now_ms,
		    uint64_t mono_ms)
{
	struct store_totals t;

	store_totals(s, mono_ms, &t);
	metric_head(o, "ringhold_connections_held", "gauge",
		    "Connections held by all fresh tcp-server reporters.");
	outbuf_printf(o, "ringhold_connections_held %" PRId64 "\n",
		      t.connections);
	metric_head(o, "ringhold_client_connections", "gauge",
		    "Connections open by all fresh tcp-client reporters.");
	outbuf_printf(o, "ringhold_client_connections %" PRId64 "\n",
		      t.client_connections);
	metric_head(o, "ringhold_reporters", "gauge",
		    "Known reporters by role and state.");
	outbuf_printf(o, "ringhold_reporters{role=\"server\",state=\"fresh\"} %u\n"
		      "ringhold_reporters{role=\"client\",state=\"fresh\"} %u\n"
		      "ringhold_reporters{role=\"any\",state=\"stale\"} %u\n",
		      t.servers, t.clients, t.stale);

	per_row_int(o, s, "ringhold_reporter_connections", "gauge",
		    "Connections the reporter holds now.", 0,
		    offsetof(struct report, connections));
	per_row_int(o, s, "ringhold_reporter_target_connections", "gauge",
		    "Connections the client aims for.", REPORT_HAS_TARGET,
		    offsetof(struct report, target));
	per_row_int(o, s, "ringhold_reporter_keepalives_total", "counter",
		    "Keepalive probes or messages exchanged.",
		    REPORT_HAS_KEEPALIVES, offsetof(struct report, keepalives));
	per_row_int(o, s, "ringhold_reporter_rss_bytes", "gauge",
		    "Resident memory of the reporter.", REPORT_HAS_RSS,
		    offsetof(struct report, rss_bytes));
	per_row_int(o, s, "ringhold_reporter_start_time_seconds", "gauge",
		    "Start time of the reporter, unix seconds.",
		    REPORT_HAS_START, offsetof(struct report, start_time));

	if (s->nr_rows) {
		metric_head(o, "ringhold_reporter_stale", "gauge",
			    "1 when the reporter has not reported for the stale time.");
		for (uint32_t i = 0; i < s->nr_rows; i++) {
			outbuf_str(o, "ringhold_reporter_stale");
			row_labels(o, &s->rows[i].r);
			outbuf_printf(o, "} %d\n",
				      store_row_stale(s, &s->rows[i], mono_ms));
		}
		metric_head(o, "ringhold_reporter_last_report_seconds", "gauge",
			    "Unix time of the reporter's last report.");
		for (uint32_t i = 0; i < s->nr_rows; i++) {
			outbuf_str(o, "ringhold_reporter_last_report_seconds");
			row_labels(o, &s->rows[i].r);
			outbuf_printf(o, "} %.3f\n",
				      (double)s->rows[i].updated_ms / 1000.0);
		}
		metric_head(o, "ringhold_reporter_info", "gauge",
			    "Version and backend of the reporter.");
		for (uint32_t i = 0; i < s->nr_rows; i++) {
			const struct report *r = &s->rows[i].r;

			outbuf_str(o, "ringhold_reporter_info");
			row_labels(o, r);
			outbuf_str(o, ",version=\"");
			outbuf_label(o, r->version);
			outbuf_str(o, "\",backend=\"");
			outbuf_label(o, r->backend);
			outbuf_str(o, "\"} 1\n");
		}
	}
	for (uint32_t i = 0, any = 0; i < s->nr_rows; i++) {
		const struct report *r = &s->rows[i].r;

		if (!(r->has & REPORT_HAS_RATE))
			continue;
		if (!any++)
			metric_head(o, "ringhold_reporter_connect_rate", "gauge",
				    "Connections opened per second.");
		outbuf_str(o, "ringhold_reporter_connect_rate");
		row_labels(o, r);
		outbuf_printf(o, "} %.3f\n", r->connect_rate);
	}
	for (uint32_t i = 0, any = 0; i < s->nr_rows; i++) {
		const struct report *r = &s->rows[i].r;

		if (!(r->has & REPORT_HAS_LATENCY))
			continue;
		if (!any++)
			metric_head(o, "ringhold_reporter_latency_microseconds",
				    "gauge",
				    "Latency percentiles the reporter measured.");
		for (int q = 0; q < 4; q++) {
			outbuf_str(o, "ringhold_reporter_latency_microseconds");
			row_labels(o, r);
			outbuf_printf(o, ",quantile=\"%s\"} %" PRId64 "\n",
				      latency_quantiles[q], r->latency_us[q]);
		}
	}
	per_row_reasons(o, s, "ringhold_reporter_failures_total",
			"Failed connection attempts by reason.", false);
	per_row_reasons(o, s, "ringhold_reporter_drops_total",
			"Connections lost after being established, by reason.",
			true);

	metric_head(o, "ringhold_stats_reports_total", "counter",
		    "Reports received by this service, by outcome.");
	outbuf_printf(o, "ringhold_stats_reports_total{outcome=\"accepted\"} %" PRIu64 "\n"
		      "ringhold_stats_reports_total{outcome=\"rejected\"} %" PRIu64 "\n",
		      self->reports_ok, self->reports_rejected);
	metric_head(o, "ringhold_stats_http_requests_total", "counter",
		    "HTTP requests answered.");
	outbuf_printf(o, "ringhold_stats_http_requests_total %" PRIu64 "\n",
		      self->requests);
	metric_head(o, "ringhold_stats_http_connections", "gauge",
		    "Open HTTP connections to this service.");
	outbuf_printf(o, "ringhold_stats_http_connections %" PRIu64 "\n",
		      self->conns_open);
	metric_head(o, "ringhold_stats_http_connections_accepted_total", "counter",
		    "HTTP connections accepted.");
	outbuf_printf(o, "ringhold_stats_http_connections_accepted_total %" PRIu64 "\n",
		      self->conns_accepted);
	metric_head(o, "ringhold_stats_http_timeouts_total", "counter",
		    "Connections dropped for being idle or too slow.");
	outbuf_printf(o, "ringhold_stats_http_timeouts_total %" PRIu64 "\n",
		      self->conns_timed_out);
	metric_head(o, "ringhold_stats_sse_clients", "gauge",
		    "Dashboards connected to /api/events.");
	outbuf_printf(o, "ringhold_stats_sse_clients %" PRIu64 "\n",
		      self->sse_clients);
	metric_head(o, "ringhold_stats_start_time_seconds", "gauge",
		    "Start time of this service, unix seconds.");
	outbuf_printf(o, "ringhold_stats_start_time_seconds %" PRIu64 "\n",
		      self->start_unix);
	(void)now_ms;
}
