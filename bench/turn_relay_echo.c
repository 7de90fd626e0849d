/* UDP echo peer for bench/turn_relay.py: every datagram goes back to its sender.
 * usage: turn_relay_echo PORT   (binds 127.0.0.1:PORT, prints "ready") */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(argc > 1 ? atoi(argv[1]) : 0);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    printf("ready\n");
    fflush(stdout);
    unsigned char data[70000];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, data, sizeof data, 0, (struct sockaddr *)&from, &len);
        if (n >= 0) sendto(fd, data, n, 0, (struct sockaddr *)&from, len);
    }
}
