/*
 * rtpgen: RTP load generator and receiver for benchmarks/bench_media.py (loopback only).
 *
 * Sends 20 ms PCMU/PCMA packets for N channels on absolute deadlines (CLOCK_MONOTONIC,
 * the clock the Python engine ticks on), receives what the engine sends back, and writes
 * per-frame send and arrival times to a binary file the benchmark analyses with numpy.
 *
 * Channel c sends frame k at  start + phase[c] + k * period  from socket c % nsock to
 * 127.0.0.1:port[c]. The payload carries (channel, k) as nibbles mapped to octet values
 * that survive a G.711 decode -> encode round trip (given by the caller), so the receiver
 * can tell which frame came back whichever socket it arrives on.
 *
 * Usage: rtpgen PORTS_FILE OUT_FILE nsock base_port start_ns period_ns frames pt
 *               safe_hex(32 hex chars = 16 octets) fill_octet drain_ms
 * PORTS_FILE: one line per channel: "<engine_port> <phase_ns>".
 * OUT_FILE: int64 header [n, frames], then int64 send_ns[n*frames],
 *           int64 arrival_ns[n*frames] (0 = never received), indexed by sender channel.
 * stdout: one JSON object with counters.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PKT 172

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int nib_of[256];

int main(int argc, char **argv) {
    if (argc != 12) {
        fprintf(stderr, "usage: rtpgen PORTS OUT nsock base_port start_ns period_ns frames pt "
                        "safe_hex fill drain_ms\n");
        return 2;
    }
    const char *ports_file = argv[1], *out_file = argv[2];
    int nsock = atoi(argv[3]), base_port = atoi(argv[4]);
    int64_t start = atoll(argv[5]), period = atoll(argv[6]);
    int frames = atoi(argv[7]), pt = atoi(argv[8]);
    const char *safe_hex = argv[9];
    int fill = (int)strtol(argv[10], NULL, 0);
    int64_t drain = atoll(argv[11]) * 1000000LL;
    unsigned char safe[16];
    for (int i = 0; i < 256; i++) nib_of[i] = -1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(safe_hex + 2 * i, "%2x", &v);
        safe[i] = (unsigned char)v;
        nib_of[v] = i;
    }
    FILE *pf = fopen(ports_file, "r");
    if (!pf) { perror("ports"); return 1; }
    int cap = 1024, n = 0;
    int *port = malloc(sizeof(int) * cap);
    int64_t *phase = malloc(sizeof(int64_t) * cap);
    long long ph;
    int p;
    while (fscanf(pf, "%d %lld", &p, &ph) == 2) {
        if (n == cap) {
            cap *= 2;
            port = realloc(port, sizeof(int) * cap);
            phase = realloc(phase, sizeof(int64_t) * cap);
        }
        port[n] = p;
        phase[n] = ph;
        n++;
    }
    fclose(pf);
    /* send order within a period: by phase */
    int *order = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort, n <= a few thousand */
        int v = order[i], j = i - 1;
        while (j >= 0 && phase[order[j]] > phase[v]) { order[j + 1] = order[j]; j--; }
        order[j + 1] = v;
    }
    int *fd = malloc(sizeof(int) * nsock);
    struct pollfd *pfd = malloc(sizeof(struct pollfd) * nsock);
    for (int s = 0; s < nsock; s++) {
        fd[s] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        int sz = 4 << 20;
        setsockopt(fd[s], SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
        setsockopt(fd[s], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons(base_port + s);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd[s], (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
        pfd[s].fd = fd[s];
        pfd[s].events = POLLIN;
    }
    int64_t total = (int64_t)n * frames;
    int64_t *send_ns = calloc(total, sizeof(int64_t));
    int64_t *arr_ns = calloc(total, sizeof(int64_t));
    struct sockaddr_in *dst = calloc(n, sizeof(struct sockaddr_in));
    for (int c = 0; c < n; c++) {
        dst[c].sin_family = AF_INET;
        dst[c].sin_port = htons(port[c]);
        dst[c].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    /* per-socket send batches */
    struct mmsghdr *smsg = calloc((size_t)nsock * BATCH, sizeof(struct mmsghdr));
    struct iovec *siov = calloc((size_t)nsock * BATCH, sizeof(struct iovec));
    unsigned char *sbuf = calloc((size_t)nsock * BATCH, PKT);
    int *scount = calloc(nsock, sizeof(int));
    int *schan = calloc((size_t)nsock * BATCH, sizeof(int));
    int *sframe = calloc((size_t)nsock * BATCH, sizeof(int));
    struct mmsghdr rmsg[BATCH];
    struct iovec riov[BATCH];
    unsigned char rbuf[BATCH][2048];
    for (int i = 0; i < BATCH; i++) {
        riov[i].iov_base = rbuf[i];
        riov[i].iov_len = sizeof rbuf[i];
        memset(&rmsg[i], 0, sizeof rmsg[i]);
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    long long sent = 0, send_err = 0, received = 0, invalid = 0, dup = 0, other = 0;
    int64_t ptr = 0, end_at = start + (int64_t)frames * period + drain;

    for (;;) {
        int64_t t = now_ns();
        /* queue every frame that is due */
        while (ptr < total) {
            int k = (int)(ptr / n), c = order[ptr % n];
            int64_t due = start + phase[c] + (int64_t)k * period;
            if (due > t) break;
            int s = c % nsock, b = s * BATCH + scount[s];
            unsigned char *pk = sbuf + (size_t)b * PKT;
            pk[0] = 0x80;
            pk[1] = (unsigned char)(pt | (k == 0 ? 0x80 : 0));
            uint16_t seq = htons((uint16_t)k);
            uint32_t ts = htonl((uint32_t)k * 160u), ssrc = htonl(0x10000u + (uint32_t)c);
            memcpy(pk + 2, &seq, 2);
            memcpy(pk + 4, &ts, 4);
            memcpy(pk + 8, &ssrc, 4);
            unsigned char *pl = pk + 12;
            memset(pl, fill, 160);
            uint32_t cc = (uint32_t)c, kk = (uint32_t)k, x = 0;
            for (int i = 0; i < 4; i++) { int v = (cc >> (4 * i)) & 15; pl[i] = safe[v]; x ^= v; }
            for (int i = 0; i < 6; i++) { int v = (kk >> (4 * i)) & 15; pl[4 + i] = safe[v]; x ^= v; }
            pl[10] = safe[x ^ 0x5];
            siov[b].iov_base = pk;
            siov[b].iov_len = PKT;
            smsg[b].msg_hdr.msg_iov = &siov[b];
            smsg[b].msg_hdr.msg_iovlen = 1;
            smsg[b].msg_hdr.msg_name = &dst[c];
            smsg[b].msg_hdr.msg_namelen = sizeof dst[c];
            schan[b] = c;
            sframe[b] = k;
            ptr++;
            if (++scount[s] == BATCH) {
                int r = sendmmsg(fd[s], smsg + s * BATCH, BATCH, 0);
                int64_t ts_sent = now_ns();
                for (int i = 0; i < BATCH; i++) {
                    int bi = s * BATCH + i;
                    if (i < r) { send_ns[(int64_t)schan[bi] * frames + sframe[bi]] = ts_sent; sent++; }
                    else send_err++;
                }
                scount[s] = 0;
            }
        }
        for (int s = 0; s < nsock; s++) {
            if (!scount[s]) continue;
            int r = sendmmsg(fd[s], smsg + s * BATCH, scount[s], 0);
            int64_t ts_sent = now_ns();
            for (int i = 0; i < scount[s]; i++) {
                int bi = s * BATCH + i;
                if (i < r) { send_ns[(int64_t)schan[bi] * frames + sframe[bi]] = ts_sent; sent++; }
                else send_err++;
            }
            scount[s] = 0;
        }
        t = now_ns();
        if (ptr >= total && t >= end_at) break;
        int64_t wait = ptr < total ? start + phase[order[ptr % n]] + (ptr / n) * period - t
                                   : end_at - t;
        if (wait < 0) wait = 0;
        if (wait > 1000000) wait = 1000000;
        struct timespec to = {0, (long)wait};
        int ready = ppoll(pfd, nsock, &to, NULL);
        if (ready <= 0) continue;
        for (int s = 0; s < nsock; s++) {
            if (!(pfd[s].revents & POLLIN)) continue;
            for (;;) {
                int r = recvmmsg(fd[s], rmsg, BATCH, MSG_DONTWAIT, NULL);
                if (r <= 0) break;
                int64_t at = now_ns();
                for (int i = 0; i < r; i++) {
                    received++;
                    unsigned char *d = rbuf[i];
                    if (rmsg[i].msg_len != PKT || (d[1] & 0x7f) != pt) { other++; continue; }
                    unsigned char *pl = d + 12;
                    uint32_t cc = 0, kk = 0, x = 0;
                    int bad = 0;
                    for (int j = 0; j < 11; j++) if (nib_of[pl[j]] < 0) bad = 1;
                    if (bad) { invalid++; continue; }
                    for (int j = 0; j < 4; j++) { int v = nib_of[pl[j]]; cc |= (uint32_t)v << (4 * j); x ^= v; }
                    for (int j = 0; j < 6; j++) { int v = nib_of[pl[4 + j]]; kk |= (uint32_t)v << (4 * j); x ^= v; }
                    if ((int)(x ^ 0x5) != nib_of[pl[10]] || cc >= (uint32_t)n || kk >= (uint32_t)frames) {
                        invalid++;
                        continue;
                    }
                    int64_t idx = (int64_t)cc * frames + kk;
                    if (arr_ns[idx]) dup++;
                    else arr_ns[idx] = at;
                }
                if (r < BATCH) break;
            }
        }
    }
    FILE *of = fopen(out_file, "wb");
    if (!of) { perror("out"); return 1; }
    int64_t hdr[2] = {n, frames};
    fwrite(hdr, sizeof hdr, 1, of);
    fwrite(send_ns, sizeof(int64_t), total, of);
    fwrite(arr_ns, sizeof(int64_t), total, of);
    fclose(of);
    printf("{\"channels\": %d, \"frames\": %d, \"sent\": %lld, \"send_errors\": %lld, "
           "\"received\": %lld, \"invalid\": %lld, \"duplicates\": %lld, \"other\": %lld}\n",
           n, frames, sent, send_err, received, invalid, dup, other);
    return 0;
}
