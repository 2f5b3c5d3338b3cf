/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "proc.h"

#include "report.h"

#define REPORT_TIMEOUT_MS		5000
#define REPORT_CONNECT_TIMEOUT_MS	2000

struct reporter {
	struct loop *loop;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *headers;
	char *url;
	char *inflight;		/* body of the request in flight */
	char *waiting;		/* newest body not yet sent */
	char errbuf[CURL_ERROR_SIZE];
	unsigned poll_base, poll_count, timer_id;
	curl_socket_t *poll_fd;	/* fd watched under each poll id, or -1 */
	report_done_cb done;
	void *arg;
};

static int poll_id_of(struct reporter *r, curl_socket_t fd)
{
	for (unsigned i = 0; i < r->poll_count; i++)
		if (r->poll_fd[i] == fd)
			return (int)i;
	return -1;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
		     void *socketp)
{
	struct reporter *r = userp;
	int id = poll_id_of(r, fd);
	unsigned events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (id >= 0) {
			loop_poll_cancel(r->loop, r->poll_base + (unsigned)id);
			r->poll_fd[id] = CURL_SOCKET_BAD;
		}
		return 0;
	}
	if (id < 0) {
		id = poll_id_of(r, CURL_SOCKET_BAD);
		if (id < 0)
			return -1;	/* more sockets than poll ids */
		r->poll_fd[id] = fd;
	}
	if (what & CURL_POLL_IN)
		events |= POLLIN;
	if (what & CURL_POLL_OUT)
		events |= POLLOUT;
	return loop_poll(r->loop, r->poll_base + (unsigned)id, fd, events) < 0 ? -1 : 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct reporter *r = userp;

	if (timeout_ms < 0)
		return loop_timer_cancel(r->loop, r->timer_id) < 0 ? -1 : 0;
	return loop_timer(r->loop, r->timer_id, (uint64_t)timeout_ms) < 0 ? -1 : 0;
}

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

static void start_next(struct reporter *r);

static void check_done(struct reporter *r)
{
	struct report_result res = { 0 };
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(r->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
				  &res.http_status);
		res.ok = msg->data.result == CURLE_OK &&
			 res.http_status >= 200 && res.http_status < 300;
		if (msg->data.result != CURLE_OK)
			res.error = r->errbuf[0] ? r->errbuf
				  : curl_easy_strerror(msg->data.result);
		curl_multi_remove_handle(r->multi, msg->easy_handle);
		free(r->inflight);
		r->inflight = NULL;
		if (r->done)
			r->done(r->arg, &res);
		start_next(r);
	}
}

static void start_next(struct reporter *r)
{
	if (r->inflight || !r->waiting)
		return;
	r->inflight = r->waiting;
	r->waiting = NULL;
	r->errbuf[0] = '\0';
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->inflight);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(r->inflight));
	if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK) {
		struct report_result res = { .error = "curl_multi_add_handle failed" };

		free(r->inflight);
		r->inflight = NULL;
		if (r->done)
			r->done(r->arg, &res);
	}
}

bool reporter_handle(struct reporter *r, const struct loop_event *ev)
{
	int running, mask = 0;

	if (!r)
		return false;
	if (ev->type == LOOP_EV_TIMER && ev->id == r->timer_id) {
		curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	} else if (ev->type == LOOP_EV_POLL && ev->id >= r->poll_base &&
		   ev->id < r->poll_base + r->poll_count) {
		curl_socket_t fd = r->poll_fd[ev->id - r->poll_base];

		if (fd == CURL_SOCKET_BAD)
			return true;
		if (ev->res < 0)
			mask = CURL_CSELECT_ERR;
		else {
			if (ev->res & (POLLIN | POLLHUP))
				mask |= CURL_CSELECT_IN;
			if (ev->res & POLLOUT)
				mask |= CURL_CSELECT_OUT;
			if (ev->res & POLLERR)
				mask |= CURL_CSELECT_ERR;
		}
		curl_multi_socket_action(r->multi, fd, mask, &running);
	} else {
		return false;
	}
	check_done(r);
	return true;
}

int reporter_send(struct reporter *r, char *body)
{
	free(r->waiting);
	r->waiting = body;
	start_next(r);
	return 0;
}

bool reporter_busy(const struct reporter *r)
{
	return r->inflight != NULL;
}

struct reporter *reporter_new(struct loop *loop, const char *url,
			      unsigned poll_base, unsigned poll_count,
			      unsigned timer_id, report_done_cb done, void *arg,
			      int *err)
{
	static int curl_ready;
	struct reporter *r;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			*err = -EIO;
			return NULL;
		}
		curl_ready = 1;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		goto nomem;
	r->loop = loop;
	r->poll_base = poll_base;
	r->poll_count = poll_count;
	r->timer_id = timer_id;
	r->done = done;
	r->arg = arg;
	r->url = strdup(url);
	r->poll_fd = malloc(poll_count * sizeof(*r->poll_fd));
	r->multi = curl_multi_init();
	r->easy = curl_easy_init();
	r->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!r->url || !r->poll_fd || !r->multi || !r->easy || !r->headers)
		goto nomem;
	for (unsigned i = 0; i < poll_count; i++)
		r->poll_fd[i] = CURL_SOCKET_BAD;
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)REPORT_TIMEOUT_MS);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)REPORT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, discard_cb);
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "ringhold-reporter");
	return r;
nomem:
	reporter_free(r);
	*err = -ENOMEM;
	return NULL;
}

void reporter_free(struct reporter *r)
{
	if (!r)
		return;
	if (r->multi && r->easy && r->inflight)
		curl_multi_remove_handle(r->multi, r->easy);
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->multi)
		curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->headers);
	free(r->poll_fd);
	free(r->url);
	free(r->inflight);
	free(r->waiting);
	free(r);
}

struct json_t *report_doc_new(const char *role, const char *name,
			      const char *backend, int64_t start_time)
{
	static const char *const env_keys[][2] = {
		{ "pod", "POD_NAME" },
		{ "namespace", "POD_NAMESPACE" },
		{ "node", "NODE_NAME" },
	};
	json_t *doc = json_object();

	if (!doc)
		return NULL;
	json_object_set_new(doc, "role", json_string(role));
	json_object_set_new(doc, "name", json_string(name));
	json_object_set_new(doc, "machineName", json_string(name));
	for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++) {
		const char *v = getenv(env_keys[i][1]);

		if (v && *v)
			json_object_set_new(doc, env_keys[i][0], json_string(v));
	}
	json_object_set_new(doc, "backend", json_string(backend));
	json_object_set_new(doc, "version", json_string(RINGHOLD_VERSION));
	json_object_set_new(doc, "rssBytes", json_integer((json_int_t)proc_rss_bytes()));
	json_object_set_new(doc, "startTime", json_integer(start_time));
	return doc;
}
