/* The cluster smoke test's image: one static binary, built and `docker import`ed by the test.
 *
 *   hello serve PORT        answer every connection with "200 OK" and "hello from <hostname>"
 *   hello get HOST PORT     print what HOST:PORT answers; exit 0 on a 200 (10 tries, 1 s apart)
 *
 * It exits at once on SIGTERM (as PID 1 the default action would be ignored), so its pods
 * are deleted in seconds, not after the grace period.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static int serve(int port) {
  char host[256] = "unknown", body[300], reply[512], request[4096];
  int one = 1, server = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
  gethostname(host, sizeof host - 1);
  snprintf(body, sizeof body, "hello from %s\n", host);
  snprintf(reply, sizeof reply,
           "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(server, (struct sockaddr *)&address, sizeof address) < 0 || listen(server, 16) < 0) {
    perror("hello: bind/listen");
    return 1;
  }
  fprintf(stderr, "hello: serving on port %d as %s\n", port, host);
  for (;;) {
    int client = accept(server, NULL, NULL);
    if (client < 0) continue;
    if (read(client, request, sizeof request) >= 0) write(client, reply, strlen(reply));
    close(client);
  }
}

static int get(const char *host, int port) {
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
  const char request[] = "GET / HTTP/1.0\r\n\r\n";
  char reply[4096];
  if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
    fprintf(stderr, "hello: not an IPv4 address: %s\n", host);
    return 2;
  }
  for (int attempt = 1; attempt <= 10; attempt++) {
    int client = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval timeout = {.tv_sec = 3};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(client, (struct sockaddr *)&address, sizeof address) == 0 &&
        write(client, request, sizeof request - 1) > 0) {
      ssize_t got, total = 0;
      while (total < (ssize_t)sizeof reply - 1 &&
             (got = read(client, reply + total, sizeof reply - 1 - total)) > 0)
        total += got;
      reply[total] = '\0';
      close(client);
      fputs(reply, stdout);
      if (strncmp(reply, "HTTP/1.0 200", 12) == 0) return 0;
    } else {
      close(client);
    }
    fprintf(stderr, "hello: attempt %d to %s:%d failed\n", attempt, host, port);
    sleep(1);
  }
  return 1;
}

int main(int argc, char **argv) {
  signal(SIGTERM, quit);
  signal(SIGINT, quit);
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
  if (argc == 4 && strcmp(argv[1], "get") == 0) return get(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: hello serve PORT | hello get HOST PORT\n");
  return 2;
}
