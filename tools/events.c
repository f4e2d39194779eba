/* Engine events of take and restore: the progress line on a terminal, JSON
 * events on stdout, notices on stderr. */
#include "util.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIN_INTERVAL_NS 100000000ull /* at most 10 redraws or events a second */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void events_init(struct events *e, const struct cli *cli, int quiet, int json_events)
{
	memset(e, 0, sizeof(*e));
	e->cli = cli;
	e->progress_line = !quiet && !cli->json && isatty(STDERR_FILENO);
	e->json_progress = e->json_state = cli->json && json_events;
	e->start_ns = now_ns();
}

static void draw_progress(const struct events *e, const cairn_event *ev, uint64_t now)
{
	char files[48], bytes[32], rate[32], eta[48] = "";
	double secs = (double)(now - e->start_ns) / 1e9;
	double bps = secs > 0 ? (double)ev->bytes / secs : 0;

	if (ev->total_files)
		snprintf(files, sizeof(files), "%" PRIu64 "/%" PRIu64, ev->files, ev->total_files);
	else
		snprintf(files, sizeof(files), "%" PRIu64, ev->files);
	format_size(bytes, ev->bytes);
	format_size(rate, (uint64_t)bps);
	if (ev->total_bytes > ev->bytes && bps >= 1) {
		char left[32];
		format_duration(left, (uint64_t)((double)(ev->total_bytes - ev->bytes) / bps * 1000));
		snprintf(eta, sizeof(eta), ", ETA %s", left);
	}
	fprintf(stderr, "\r%s files, %s, %s/s%s\033[K", files, bytes, rate, eta);
	fflush(stderr);
	progress_drawn();
}

static void json_progress(const cairn_event *ev)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '{');
	json_str(&j, "event", "progress");
	if (ev->phase)
		json_str(&j, "phase", ev->phase);
	json_u64(&j, "files", ev->files);
	json_u64(&j, "bytes", ev->bytes);
	json_u64(&j, "new_bytes", ev->new_bytes);
	json_u64(&j, "stored_bytes", ev->stored_bytes);
	json_close(&j, '}');
	json_line_end(&j);
}

static void json_state(const cairn_event *ev)
{
	struct json j;
	json_start(&j, stdout);
	json_open(&j, NULL, '{');
	json_str(&j, "event", "state");
	json_str(&j, "state", ev->state);
	if (ev->ms || !strcmp(ev->state, "paused"))
		json_u64(&j, "ms", ev->ms);
	if (ev->snapshot && *ev->snapshot)
		json_str(&j, "snapshot", ev->snapshot);
	json_close(&j, '}');
	json_line_end(&j);
}

void events_cb(const cairn_event *ev, void *payload)
{
	struct events *e = payload;
	switch (ev->type) {
	case CAIRN_EVENT_NOTICE:
		if (ev->message)
			cli_notice(e->cli, ev->message);
		break;
	case CAIRN_EVENT_PROGRESS: {
		uint64_t now = now_ns();
		if (e->last_ns && now - e->last_ns < MIN_INTERVAL_NS)
			break;
		e->last_ns = now;
		if (e->json_progress)
			json_progress(ev);
		else if (e->progress_line)
			draw_progress(e, ev, now);
		break;
	}
	case CAIRN_EVENT_STATE:
		if (!ev->state)
			break;
		if (!strcmp(ev->state, "saved"))
			e->saved = 1;
		if (e->json_state)
			json_state(ev);
		break;
	}
}
