/* http_adopt_test.c — http_server_adopt / listener_adopt: a socketpair end is served like an accepted
 * connection (pipelined requests answered in order, closed after the peer half-closes, nothing
 * leaked), and a bad fd is an error with a message. */
#include "test.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "net/http.h"

static void h_hello(http_req_t *r, void *arg)
{
	http_respond(r, 200, "text/plain", "hello\n", 6);
}

TEST(adopted_socketpair_is_served)
{
	log_set_level(LOG_ERROR);
	loop_t *l;
	err_t err = {0};
	CHECK_EQ_INT(loop_new(&l, &err), 0);
	http_server_config_t cfg = {.address = "127.0.0.1:0", .worker_threads = -1};
	http_server_t *srv;
	CHECK_EQ_INT(http_server_new(&srv, l, &cfg, &err), 0);
	http_handle(srv, HTTP_M_GET, "/hello", h_hello, NULL);
	int sv[2];
	CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ_INT(http_server_adopt(srv, sv[0], "pair", &err), 0);
	CHECK_EQ_U64(http_server_conn_count(srv), 1);
	static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK_EQ_INT((int)write(sv[1], req, sizeof req - 1), (int)(sizeof req - 1));
	shutdown(sv[1], SHUT_WR);
	uint64_t t0 = clock_mono_ms();
	while (http_server_conn_count(srv) > 0 && clock_mono_ms() - t0 < 5000)
		loop_run_once(l, 10);
	CHECK_EQ_U64(http_server_conn_count(srv), 0);
	char out[1024];
	size_t n = 0;
	ssize_t k;
	while (n < sizeof out - 1 && (k = read(sv[1], out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = 0;
	char *a = strstr(out, "hello\n"), *b = strstr(out, "\r\n\r\nOK");
	CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(a != NULL && b != NULL && a < b);
	close(sv[1]);

	/* A descriptor that is not open: an error naming the peer, nothing registered. */
	err_t e2 = {0};
	CHECK(http_server_adopt(srv, 1 << 20, "ghost", &e2) < 0);
	CHECK(strstr(e2.msg, "ghost") != NULL);
	CHECK_EQ_U64(http_server_conn_count(srv), 0);

	http_server_free(srv);
	loop_free(l);
}

TEST_MAIN()
