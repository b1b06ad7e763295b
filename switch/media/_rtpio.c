/*
 * _rtpio: batched RTP socket I/O for the media engine host (switch/media/batchio.py).
 *
 * Why C: at 50 packets/s per channel each way, the per-datagram cost of Python socket
 * calls (a method call, a bytes object, an address tuple, the event loop's callback per
 * datagram) is what limited one worker to about 600 channels. Here one call per tick
 * drains every channel socket into preallocated buffers owned by Python (numpy arrays
 * passed through the buffer protocol, no numpy headers needed at build time), and one call
 * sends every outgoing packet; the GIL is released while the kernel works.
 *
 * drain(epfd, slot_of_fd, buf, lens, idx, ip, port, fam, ip6, tns, vlen)
 *         -> (count, errors, full)
 *     Asks the epoll set ``epfd`` (level-triggered EPOLLIN, filled by Python) which sockets
 *     are readable, so an idle channel costs nothing, and drains each with recvmmsg
 *     (MSG_DONTWAIT, up to vlen datagrams a call) until it is empty or the buffers are
 *     full. Datagram j gets:
 *       buf[j*stride : j*stride+lens[j]] payload (stride = len(buf) / capacity),
 *       lens[j] = datagram length, or -1 if it was longer than stride (MSG_TRUNC),
 *       idx[j] = slot_of_fd[fd] (the engine slot), fam[j] = 4 or 6,
 *       ip[j] = IPv4 address (host order), port[j], ip6[j*16 : j*16+16] (fam 6 only),
 *       tns[j] = arrival time, CLOCK_MONOTONIC ns: the kernel's receive timestamp
 *                (SO_TIMESTAMPNS, CLOCK_REALTIME) shifted by (monotonic - realtime) read
 *                once per call; the drain time when the socket gives no timestamp.
 *     Datagrams of one socket are stored in arrival order. ``full``: the buffers filled
 *     up, call again (level-triggered epoll reports the sockets that still hold data).
 *     ``errors`` counts failed receive calls other than EAGAIN (the socket is skipped).
 *
 * send(fds, buf, stride, lens, ip, port, err) -> errors
 *     For packet j: sendto(fds[j], buf[j*stride : j*stride + lens[j]], IPv4 ip[j]:port[j]).
 *     lens may be None (every packet is stride octets). err[j] = 1 when the send failed
 *     (full buffer: the packet is dropped, as a router would; RTP must not queue behind
 *     itself), else 0.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_VLEN 64
#define MAX_EVENTS 256
#define CTRL_LEN 64

static int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int check_buf(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t count, const char *name) {
    if (b->len < itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s: buffer too small (%zd < %zd bytes)", name,
                     b->len, itemsize * count);
        return -1;
    }
    return 0;
}

static PyObject *rtpio_drain(PyObject *self, PyObject *args) {
    int epfd;
    Py_buffer slot_of, buf, lens, idx, ip, port, fam, ip6, tns;
    Py_ssize_t vlen;
    if (!PyArg_ParseTuple(args, "iy*w*w*w*w*w*w*w*w*n", &epfd, &slot_of, &buf, &lens, &idx,
                          &ip, &port, &fam, &ip6, &tns, &vlen))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t nmap = slot_of.len / (Py_ssize_t)sizeof(int32_t);
    Py_ssize_t cap = lens.len / (Py_ssize_t)sizeof(int32_t);
    if (vlen < 1 || vlen > MAX_VLEN) {
        PyErr_SetString(PyExc_ValueError, "vlen must be within 1..64");
        goto done;
    }
    if (cap < 1 || buf.len < cap) {
        PyErr_SetString(PyExc_ValueError, "empty receive buffers");
        goto done;
    }
    if (check_buf(&idx, 4, cap, "idx") || check_buf(&ip, 4, cap, "ip") ||
        check_buf(&port, 2, cap, "port") || check_buf(&fam, 1, cap, "fam") ||
        check_buf(&ip6, 16, cap, "ip6") || check_buf(&tns, 8, cap, "tns"))
        goto done;
    {
        Py_ssize_t stride = buf.len / cap;
        const int32_t *map = slot_of.buf;
        uint8_t *data = buf.buf;
        int32_t *olen = lens.buf, *oidx = idx.buf;
        uint32_t *oip = ip.buf;
        uint16_t *oport = port.buf;
        uint8_t *ofam = fam.buf, *oip6 = ip6.buf;
        int64_t *ot = tns.buf;
        Py_ssize_t count = 0, errors = 0;
        int full = 0, failed = 0;
        struct epoll_event ev[MAX_EVENTS];
        struct mmsghdr msgs[MAX_VLEN];
        struct iovec iov[MAX_VLEN];
        struct sockaddr_storage from[MAX_VLEN];
        char ctrl[MAX_VLEN][CTRL_LEN];

        Py_BEGIN_ALLOW_THREADS
        int64_t mono = clock_ns(CLOCK_MONOTONIC);
        int64_t shift = mono - clock_ns(CLOCK_REALTIME);
        int ne;
        do {
            ne = epoll_wait(epfd, ev, MAX_EVENTS, 0);
            if (ne < 0) {
                failed = errno != EINTR;
                break;
            }
            for (int e = 0; e < ne && !full; e++) {
                int fd = ev[e].data.fd;
                int32_t slot = fd >= 0 && fd < nmap ? map[fd] : -1;
                if (slot < 0)
                    continue;
                for (;;) {
                    Py_ssize_t room = cap - count;
                    if (room <= 0) {
                        full = 1;
                        break;
                    }
                    int want = (int)(room < vlen ? room : vlen);
                    for (int k = 0; k < want; k++) {
                        iov[k].iov_base = data + (count + k) * stride;
                        iov[k].iov_len = (size_t)stride;
                        memset(&msgs[k].msg_hdr, 0, sizeof(msgs[k].msg_hdr));
                        msgs[k].msg_hdr.msg_iov = &iov[k];
                        msgs[k].msg_hdr.msg_iovlen = 1;
                        msgs[k].msg_hdr.msg_name = &from[k];
                        msgs[k].msg_hdr.msg_namelen = sizeof(from[k]);
                        msgs[k].msg_hdr.msg_control = ctrl[k];
                        msgs[k].msg_hdr.msg_controllen = CTRL_LEN;
                    }
                    int got = recvmmsg(fd, msgs, (unsigned)want, MSG_DONTWAIT, NULL);
                    if (got < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                            errors++;
                        break;
                    }
                    for (int k = 0; k < got; k++) {
                        Py_ssize_t j = count + k;
                        struct msghdr *h = &msgs[k].msg_hdr;
                        olen[j] = (h->msg_flags & MSG_TRUNC) ? -1 : (int32_t)msgs[k].msg_len;
                        oidx[j] = slot;
                        ot[j] = mono;
                        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
                            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                                struct timespec ts;
                                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                                ot[j] = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + shift;
                            }
                        }
                        if (from[k].ss_family == AF_INET6) {
                            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&from[k];
                            ofam[j] = 6;
                            oip[j] = 0;
                            oport[j] = ntohs(a6->sin6_port);
                            memcpy(oip6 + j * 16, &a6->sin6_addr, 16);
                        } else {
                            struct sockaddr_in *a4 = (struct sockaddr_in *)&from[k];
                            ofam[j] = 4;
                            oip[j] = ntohl(a4->sin_addr.s_addr);
                            oport[j] = ntohs(a4->sin_port);
                        }
                    }
                    count += got;
                    if (got < want)
                        break; /* the socket is empty (MSG_DONTWAIT returned what it had) */
                }
            }
        } while (ne == MAX_EVENTS && !full);
        Py_END_ALLOW_THREADS
        if (failed)
            PyErr_SetFromErrno(PyExc_OSError);
        else
            result = Py_BuildValue("nnO", count, errors, full ? Py_True : Py_False);
    }
done:
    PyBuffer_Release(&slot_of);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&lens);
    PyBuffer_Release(&idx);
    PyBuffer_Release(&ip);
    PyBuffer_Release(&port);
    PyBuffer_Release(&fam);
    PyBuffer_Release(&ip6);
    PyBuffer_Release(&tns);
    return result;
}

static PyObject *rtpio_send(PyObject *self, PyObject *args) {
    Py_buffer fds, buf, ip, port, err, lens = {0};
    Py_ssize_t stride;
    PyObject *lens_obj;
    if (!PyArg_ParseTuple(args, "y*y*nOy*y*w*", &fds, &buf, &stride, &lens_obj, &ip, &port,
                          &err))
        return NULL;
    PyObject *result = NULL;
    int have_lens = lens_obj != Py_None;
    if (have_lens && PyObject_GetBuffer(lens_obj, &lens, PyBUF_SIMPLE) < 0)
        goto done;
    Py_ssize_t n = fds.len / (Py_ssize_t)sizeof(int32_t);
    if (stride < 1 || buf.len < n * stride) {
        PyErr_SetString(PyExc_ValueError, "send buffer smaller than packets * stride");
        goto done;
    }
    if ((have_lens && check_buf(&lens, 4, n, "lens")) || check_buf(&ip, 4, n, "ip") ||
        check_buf(&port, 2, n, "port") || check_buf(&err, 1, n, "err"))
        goto done;
    {
        const int32_t *fd = fds.buf, *len = have_lens ? lens.buf : NULL;
        const uint8_t *data = buf.buf;
        const uint32_t *dip = ip.buf;
        const uint16_t *dport = port.buf;
        uint8_t *oerr = err.buf;
        Py_ssize_t errors = 0;
        Py_BEGIN_ALLOW_THREADS
        struct sockaddr_in to;
        memset(&to, 0, sizeof(to));
        to.sin_family = AF_INET;
        for (Py_ssize_t j = 0; j < n; j++) {
            size_t size = len ? (size_t)len[j] : (size_t)stride;
            if (len && (len[j] < 0 || len[j] > stride)) {
                oerr[j] = 1;
                errors++;
                continue;
            }
            to.sin_addr.s_addr = htonl(dip[j]);
            to.sin_port = htons(dport[j]);
            ssize_t r = sendto(fd[j], data + j * stride, size, MSG_DONTWAIT,
                               (struct sockaddr *)&to, sizeof(to));
            oerr[j] = r < 0;
            errors += r < 0;
        }
        Py_END_ALLOW_THREADS
        result = PyLong_FromSsize_t(errors);
    }
done:
    PyBuffer_Release(&fds);
    PyBuffer_Release(&buf);
    if (have_lens && lens.obj)
        PyBuffer_Release(&lens);
    PyBuffer_Release(&ip);
    PyBuffer_Release(&port);
    PyBuffer_Release(&err);
    return result;
}

static PyMethodDef methods[] = {
    {"drain", rtpio_drain, METH_VARARGS,
     "drain(epfd, slot_of_fd, buf, lens, idx, ip, port, fam, ip6, tns, vlen) -> (count, "
     "errors, full): receive the queued datagrams of every ready socket into the buffers."},
    {"send", rtpio_send, METH_VARARGS,
     "send(fds, buf, stride, lens, ip, port, err) -> errors: one IPv4 sendto per packet."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rtpio",
    "Batched RTP socket I/O (recvmmsg drain, sendto loop) without the GIL.", -1, methods,
};

PyMODINIT_FUNC PyInit__rtpio(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "SO_TIMESTAMPNS", SO_TIMESTAMPNS) < 0 ||
        PyModule_AddIntConstant(m, "SCM_TIMESTAMPNS", SCM_TIMESTAMPNS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
