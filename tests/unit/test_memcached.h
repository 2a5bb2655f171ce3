/*
 * test_memcached.h — a real memcached for unit tests (Debian's /usr/bin/memcached, installed by
 * scripts/deps): a free 127.0.0.1 port, a server started on it (killed with the test process even when
 * a CHECK bails out), and stopping it by PID.
 */
#ifndef STRATA_TEST_MEMCACHED_H
#define STRATA_TEST_MEMCACHED_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static inline int test_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || getsockname(fd, (struct sockaddr *)&sa, &sl))
		abort();
	close(fd);
	return ntohs(sa.sin_port);
}

/* memcached on 127.0.0.1:port once it accepts connections (up to 2 s); -1 if it does not. */
static inline pid_t test_memcached_start(int port)
{
	char p[16];
	snprintf(p, sizeof p, "%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test, even when a CHECK bails out */
		/* memcached refuses to run as root without -u */
		execl("/usr/bin/memcached", "memcached", "-l", "127.0.0.1", "-p", p, "-U", "0", "-m", "16",
		      "-t", "1", getuid() == 0 ? "-u" : (char *)NULL, "nobody", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons((uint16_t)port),
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(fd);
		if (ok)
			return pid;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static inline void test_memcached_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

#endif
