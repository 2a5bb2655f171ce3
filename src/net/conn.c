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
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "net/tls.h"

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
	size_t nhandshaking;
	conn_t *conns, *tail; /* newest first */
	struct ssl_st *(*tls_new_ssl)(void *arg);
	void *tls_arg;
	int64_t handshake_timeout_ms;
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
	listener_t *ls = c->listener;
	if (c->ssl) {
		if (c->handshaking)
			ls->nhandshaking--;
		else if (!c->peer_eof)
			SSL_shutdown(c->ssl); /* best effort close_notify; never waits */
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	loop_del_fd(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		ls->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		ls->tail = c->prev;
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

void conn_writev_flush(conn_t *c, const struct iovec *iov, int n)
{
	if (c->closed)
		return;
	size_t skip = 0; /* bytes of iov already sent */
	if (!c->ssl && !c->handshaking && conn_pending_out(c) == 0) {
		for (;;) {
			struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
			ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				conn_close(c); /* EPIPE, ECONNRESET: the peer is gone */
				return;
			}
			skip = w > 0 ? (size_t)w : 0;
			break;
		}
	}
	for (int i = 0; i < n; i++) {
		size_t len = iov[i].iov_len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		buf_append(&c->out, (const char *)iov[i].iov_base + skip, len - skip);
		skip = 0;
	}
	conn_flush(c);
}

size_t conn_pending_out(const conn_t *c)
{
	return c->out.n - c->out_off;
}

static void update_events(conn_t *c)
{
	if (c->closed)
		return;
	if (c->handshaking) {
		loop_set_events(c->loop, c->fd, c->tls_want_write ? LOOP_WRITE : LOOP_READ);
		return;
	}
	int ev = 0;
	size_t unconsumed = c->in.n - c->in_off;
	size_t max = c->in_max ? c->in_max : (1u << 20);
	if (!c->peer_eof && !c->read_paused && !c->close_after_flush && unconsumed <= max)
		ev |= LOOP_READ;
	if (conn_pending_out(c) > 0 || c->tls_want_write)
		ev |= LOOP_WRITE;
	loop_set_events(c->loop, c->fd, ev);
}

/* ---- the transport: plain socket or TLS ---- */

/* Like recv(2): > 0 bytes, 0 at EOF (a TLS close_notify or an unclean close), -1 with errno (EAGAIN). */
static ssize_t transport_recv(conn_t *c, void *p, size_t n)
{
	if (!c->ssl)
		return recv(c->fd, p, n, 0);
	ERR_clear_error();
	int r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		c->tls_want_write = true;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			return 0;
		return -1;
	default: {
		char why[256];
		tls_errors(why, sizeof why);
		log_debug("TLS read failed", "peer", c->peer, "err", why);
		errno = EPROTO;
		return -1;
	}
	}
}

/* Like send(2) without SIGPIPE. */
static ssize_t transport_send(conn_t *c, const void *p, size_t n)
{
	if (!c->ssl)
		return send(c->fd, p, n, MSG_NOSIGNAL);
	ERR_clear_error();
	int w = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (w > 0)
		return w;
	switch (SSL_get_error(c->ssl, w)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			errno = EPIPE;
		return -1;
	default:
		ERR_clear_error();
		errno = EPIPE;
		return -1;
	}
}

/* One step of the server-side handshake; on success the protocol starts seeing data. */
static void handshake(conn_t *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		c->tls_want_write = false;
		c->hs_deadline = 0;
		c->listener->nhandshaking--;
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		return;
	}
	char why[256];
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
		snprintf(why, sizeof why, "%s",
		         errno ? strerror(errno) : "connection closed during the handshake");
	else
		tls_errors(why, sizeof why);
	log_debug("TLS handshake failed", "peer", c->peer, "err", why);
	conn_close(c);
}

void conn_flush(conn_t *c)
{
	if (c->closed)
		return;
	if (c->handshaking) { /* queued output waits for the handshake */
		update_events(c);
		return;
	}
	while (c->out_off < c->out.n) {
		ssize_t w = transport_send(c, c->out.p + c->out_off, c->out.n - c->out_off);
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
	if (c->handshaking) {
		handshake(c);
		if (c->closed)
			goto out;
		if (c->handshaking) {
			update_events(c);
			goto out;
		}
		events =
		    LOOP_READ | LOOP_WRITE; /* done: send what the protocol queued, read what came along */
	} else if (c->tls_want_write && (events & LOOP_WRITE)) {
		c->tls_want_write = false; /* the read that needed the socket writable goes on */
		events |= LOOP_READ;
	}
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
		/* TLS: decrypted bytes OpenSSL holds are invisible to epoll, so a record is always read to
		 * its end */
		while (got < READ_BUDGET || (c->ssl && SSL_pending(c->ssl) > 0)) {
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
			ssize_t r = transport_recv(c, c->in.p + c->in.n, c->in.cap - c->in.n - 1);
			if (r > 0) {
				c->in.n += (size_t)r;
				c->in.p[c->in.n] = 0;
				got += (size_t)r;
				if ((size_t)r < READ_CHUNK && !c->ssl)
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
		if (c->handshaking && now >= c->hs_deadline) {
			log_debug("closing connection: TLS handshake timed out", "peer", c->peer);
			conn_close(c);
			continue;
		}
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
	alloc_idle_tick(now); /* the heap's free pages go back once the process is idle */
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
	if (ls->tls_new_ssl) {
		c->ssl = ls->tls_new_ssl(ls->tls_arg);
		SSL_set_fd(c->ssl, fd);
		SSL_set_accept_state(c->ssl);
		c->handshaking = true;
		c->hs_deadline = clock_mono_ms() + (uint64_t)ls->handshake_timeout_ms;
		ls->nhandshaking++;
	}
	c->next = ls->conns;
	if (ls->conns)
		ls->conns->prev = c;
	else
		ls->tail = c;
	ls->conns = c;
	ls->nconns++;
	ls->on_accept(ls, c, ls->arg);
	return 0;
}

/* Full listener: make room by closing the oldest connection still in its TLS handshake (a flood of
 * half-open connections then only displaces itself). */
static bool evict_handshaking(listener_t *ls)
{
	if (!ls->nhandshaking)
		return false;
	for (conn_t *c = ls->tail; c; c = c->prev)
		if (c->handshaking) {
			log_debug("connection limit reached: closing the oldest TLS handshake", "peer",
			          c->peer);
			conn_close(c);
			return true;
		}
	return false;
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
		if (ls->nconns >= (size_t)ls->max_conns && !evict_handshaking(ls)) {
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
	ls->tls_new_ssl = cfg->tls_new_ssl;
	ls->tls_arg = cfg->tls_arg;
	ls->handshake_timeout_ms = cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : 10000;
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

size_t listener_handshaking(const listener_t *ls)
{
	return ls->nhandshaking;
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
