/*
 * conn.c — listener and connection plumbing: accept, buffered non-blocking read/write, deadlines
 * (checked by one sweep timer per listener), deferred free. See conn.h.
 */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"

#define READ_CHUNK 16384
#define READ_BUDGET (256 * 1024) /* per readiness event, for fairness between connections */
#define SWEEP_MS 100

struct listener {
	loop_t *loop;
	int fd;
	int port;
	int64_t write_timeout_ms;
	int max_conns;
	size_t nconns;
	conn_t *conns;
	uint64_t sweep_timer;
	uint64_t retry_timer;
	void (*on_accept)(listener_t *ls, conn_t *c, void *arg);
	void *arg;
};

static void conn_free_post(void *arg)
{
	conn_t *c = arg;
	buf_release(&c->in);
	buf_release(&c->out);
	free(c);
}

void conn_close(conn_t *c)
{
	if (c->closed)
		return;
	c->closed = true;
	if (c->proto && c->proto->on_close)
		c->proto->on_close(c);
	c->proto = NULL;
	loop_del_fd(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	listener_t *ls = c->listener;
	if (c->prev)
		c->prev->next = c->next;
	else
		ls->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	ls->nconns--;
	loop_post(c->loop, conn_free_post, c);
}

void conn_set_proto(conn_t *c, const conn_proto_t *proto, void *data)
{
	c->proto = proto;
	c->proto_data = data;
}

void conn_consume(conn_t *c, size_t n)
{
	BUG_ON(n > c->in.n - c->in_off);
	c->in_off += n;
	if (c->in_off == c->in.n) {
		buf_reset(&c->in);
		c->in_off = 0;
	}
}

void conn_write(conn_t *c, const void *p, size_t n)
{
	if (c->closed)
		return;
	buf_append(&c->out, p, n);
}

size_t conn_pending_out(const conn_t *c)
{
	return c->out.n - c->out_off;
}

static void update_events(conn_t *c)
{
	if (c->closed)
		return;
	int ev = 0;
	size_t unconsumed = c->in.n - c->in_off;
	size_t max = c->in_max ? c->in_max : (1u << 20);
	if (!c->peer_eof && !c->read_paused && !c->close_after_flush && unconsumed <= max)
		ev |= LOOP_READ;
	if (conn_pending_out(c) > 0)
		ev |= LOOP_WRITE;
	loop_set_events(c->loop, c->fd, ev);
}

void conn_flush(conn_t *c)
{
	if (c->closed)
		return;
	while (c->out_off < c->out.n) {
		ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.n - c->out_off, MSG_NOSIGNAL);
		if (w > 0) {
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c); /* EPIPE, ECONNRESET: the peer is gone */
		return;
	}
	if (c->out_off == c->out.n) {
		buf_reset(&c->out);
		c->out_off = 0;
		c->stall_since = 0;
		if (c->close_after_flush) {
			conn_close(c);
			return;
		}
	} else {
		if (!c->stall_since)
			c->stall_since = loop_now_ms(c->loop) ? loop_now_ms(c->loop) : 1;
		if (c->out_off > 65536 && c->out_off * 2 > c->out.n) { /* compact */
			size_t rest = c->out.n - c->out_off;
			memmove(c->out.p, c->out.p + c->out_off, rest);
			buf_truncate(&c->out, rest);
			c->out_off = 0;
		}
	}
	update_events(c);
}

void conn_pause_read(conn_t *c, bool paused)
{
	if (c->closed)
		return;
	c->read_paused = paused;
	update_events(c);
}

void conn_set_deadline(conn_t *c, int64_t in_ms)
{
	c->deadline = in_ms < 0 ? 0 : clock_mono_ms() + (uint64_t)in_ms;
}

void conn_close_after_flush(conn_t *c)
{
	if (c->closed)
		return;
	c->close_after_flush = true;
	if (conn_pending_out(c) == 0)
		conn_close(c);
	else
		update_events(c);
}

static void conn_on_event(loop_t *l, int fd, int events, void *arg)
{
	conn_t *c = arg;
	c->in_callback = true;
	if (events & LOOP_WRITE) {
		conn_flush(c);
		if (c->closed)
			goto out;
		if (conn_pending_out(c) == 0 && c->proto && c->proto->on_drained)
			c->proto->on_drained(c);
		if (c->closed)
			goto out;
	}
	if (events & LOOP_READ) {
		size_t got = 0;
		bool eof = false;
		while (got < READ_BUDGET) {
			if (c->in_off > 0 && c->in_off == c->in.n) {
				buf_reset(&c->in);
				c->in_off = 0;
			}
			if (c->in_off > 65536 && c->in_off * 2 > c->in.n) {
				size_t rest = c->in.n - c->in_off;
				memmove(c->in.p, c->in.p + c->in_off, rest);
				buf_truncate(&c->in, rest);
				c->in_off = 0;
			}
			buf_reserve(&c->in, READ_CHUNK);
			ssize_t r = recv(fd, c->in.p + c->in.n, c->in.cap - c->in.n - 1, 0);
			if (r > 0) {
				c->in.n += (size_t)r;
				c->in.p[c->in.n] = 0;
				got += (size_t)r;
				if ((size_t)r < READ_CHUNK)
					break;
				continue;
			}
			if (r == 0) {
				eof = true;
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c);
			goto out;
		}
		if (eof)
			c->peer_eof = true;
		if ((got > 0 || eof) && c->proto && c->proto->on_data)
			c->proto->on_data(c);
		if (c->closed)
			goto out;
		if (c->peer_eof && !c->proto) {
			conn_close(c);
			goto out;
		}
		conn_flush(c);
	}
out:
	c->in_callback = false;
	(void)l;
}

static int64_t sweep(loop_t *l, uint64_t id, void *arg)
{
	listener_t *ls = arg;
	uint64_t now = clock_mono_ms();
	conn_t *next;
	for (conn_t *c = ls->conns; c; c = next) {
		next = c->next;
		if (c->stall_since && now - c->stall_since > (uint64_t)ls->write_timeout_ms) {
			log_debug("closing connection: peer is not reading", "peer", c->peer);
			conn_close(c);
			continue;
		}
		if (c->deadline && now >= c->deadline) {
			c->deadline = 0;
			if (c->proto && c->proto->on_timeout)
				c->proto->on_timeout(c);
			else
				conn_close(c);
			if (!c->closed)
				conn_flush(c);
		}
	}
	(void)l;
	(void)id;
	return SWEEP_MS;
}

static int64_t retry_accept(loop_t *l, uint64_t id, void *arg)
{
	listener_t *ls = arg;
	ls->retry_timer = 0;
	if (ls->fd >= 0)
		loop_set_events(l, ls->fd, LOOP_READ);
	(void)id;
	return LOOP_TIMER_DONE;
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
		port = ntohs(s4->sin_port);
		snprintf(out, n, "%s:%d", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
		port = ntohs(s6->sin6_port);
		snprintf(out, n, "[%s]:%d", host, port);
	} else {
		snprintf(out, n, "unknown");
	}
}

/* Make a conn_t of a connected non-blocking socket and hand it to on_accept; closes fd on failure. */
static int conn_register(listener_t *ls, int fd, const char *peer, err_t *err)
{
	conn_t *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->loop = ls->loop;
	c->listener = ls;
	buf_init(&c->in);
	buf_init(&c->out);
	snprintf(c->peer, sizeof c->peer, "%s", peer);
	int rc = loop_add_fd(ls->loop, fd, LOOP_READ, conn_on_event, c, err);
	if (rc) {
		close(fd);
		free(c);
		return rc;
	}
	c->next = ls->conns;
	if (ls->conns)
		ls->conns->prev = c;
	ls->conns = c;
	ls->nconns++;
	ls->on_accept(ls, c, ls->arg);
	return 0;
}

static void on_accept(loop_t *l, int fd, int events, void *arg)
{
	listener_t *ls = arg;
	for (int i = 0; i < 256; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: back off instead of spinning on a readable listener. */
				log_warn("accept failed; pausing accepts for 100ms", "err", strerror(errno));
				loop_set_events(l, fd, 0);
				if (!ls->retry_timer)
					ls->retry_timer = loop_add_timer(l, 100, retry_accept, ls);
			}
			return;
		}
		if (ls->nconns >= (size_t)ls->max_conns) {
			close(cfd);
			continue;
		}
		int one = 1;
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		char peer[64];
		format_peer(&ss, peer, sizeof peer);
		(void)conn_register(ls, cfd, peer, NULL);
	}
	(void)events;
}

static int split_address(const char *addr, char *host, size_t hostn, char *port, size_t portn, err_t *err)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || !colon[1])
		return err_set(err, ERR_INVALID, "address \"%s\": missing port (want host:port)", addr);
	const char *h = addr;
	size_t hl = (size_t)(colon - addr);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	} else if (memchr(h, ':', hl)) {
		return err_set(err, ERR_INVALID, "address \"%s\": IPv6 hosts must be in brackets", addr);
	}
	if (hl >= hostn || strlen(colon + 1) >= portn)
		return err_set(err, ERR_INVALID, "address \"%s\": too long", addr);
	memcpy(host, h, hl);
	host[hl] = 0;
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return err_set(err, ERR_INVALID, "address \"%s\": bad port \"%s\"", addr, port);
	if (atoi(port) > 65535)
		return err_set(err, ERR_INVALID, "address \"%s\": port out of range", addr);
	return 0;
}

int listener_check_address(const char *address, err_t *err)
{
	char host[256], port[16];
	int rc = split_address(address, host, sizeof host, port, sizeof port, err);
	if (rc)
		return rc;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai)
		return err_set(err, ERR_INVALID, "address \"%s\": %s", address, gai_strerror(gai));
	freeaddrinfo(res);
	return 0;
}

int listener_new(listener_t **out, loop_t *loop, const listener_config_t *cfg, err_t *err)
{
	*out = NULL;
	char host[256], port[16];
	int rc = split_address(cfg->address, host, sizeof host, port, sizeof port, err);
	if (rc)
		return rc;
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai)
		return err_set(err, ERR_INVALID, "address \"%s\": %s", cfg->address, gai_strerror(gai));
	int fd = -1;
	rc = err_set(err, ERR_IO, "address \"%s\": no usable address", cfg->address);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			rc = err_errno(err, "listen %s: socket", cfg->address);
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) {
			rc = 0;
			break;
		}
		rc = err_errno(err, "listen %s", cfg->address);
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (rc)
		return rc;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int bound = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
						 : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	listener_t *ls = xcalloc(1, sizeof *ls);
	ls->loop = loop;
	ls->fd = fd;
	ls->port = bound;
	ls->write_timeout_ms = cfg->write_timeout_ms > 0 ? cfg->write_timeout_ms : 60000;
	ls->max_conns = cfg->max_conns > 0 ? cfg->max_conns : 10000;
	ls->on_accept = cfg->on_accept;
	ls->arg = cfg->arg;
	rc = loop_add_fd(loop, fd, LOOP_READ, on_accept, ls, err);
	if (rc) {
		close(fd);
		free(ls);
		return rc;
	}
	ls->sweep_timer = loop_add_timer(loop, SWEEP_MS, sweep, ls);
	*out = ls;
	return 0;
}

void listener_stop_accepting(listener_t *ls)
{
	if (ls->fd < 0)
		return;
	loop_del_fd(ls->loop, ls->fd);
	close(ls->fd);
	ls->fd = -1;
	if (ls->retry_timer) {
		loop_del_timer(ls->loop, ls->retry_timer);
		ls->retry_timer = 0;
	}
}

void listener_free(listener_t *ls)
{
	if (!ls)
		return;
	listener_stop_accepting(ls);
	while (ls->conns)
		conn_close(ls->conns);
	loop_del_timer(ls->loop, ls->sweep_timer);
	free(ls);
}

int listener_port(const listener_t *ls)
{
	return ls->port;
}

size_t listener_conn_count(const listener_t *ls)
{
	return ls->nconns;
}

conn_t *listener_first(listener_t *ls)
{
	return ls->conns;
}

int listener_adopt(listener_t *ls, int fd, const char *peer, err_t *err)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int rc = err_errno(err, "adopt connection %s: fd %d", peer ? peer : "unknown", fd);
		close(fd);
		return rc;
	}
	return conn_register(ls, fd, peer ? peer : "unknown", err);
}
