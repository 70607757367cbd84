/* libFuzzer target: the TLS 1.3 record layer's reading side (tls_record.h).
 * A peer's record layer, holding the same secrets the other way round,
 * writes what the input says into a socket pair: records it protects with
 * any content type and content (so that the parsing after decryption is
 * reached: padding, alerts, KeyUpdate, empty records), or raw bytes
 * (headers, lengths and tags of any value). The layer under test reads it
 * all with reads of varying size, and writes a reply, which may carry a
 * KeyUpdate it owes. Every result must be a length within the buffer, an
 * end, EG_AGAIN or EG_ERR, and after an end or an error nothing more. */
#include "base/tls_record.h"
#include "base/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const unsigned char client_secret[48] = "fuzz: the client's application traffic secret.";
static const unsigned char server_secret[48] = "fuzz: the server's application traffic secret.";
static const uint16_t suites[] = {0x1301, 0x1302, 0x1303};
static const size_t lens[] = {32, 48, 32};

/* Reads until the socket is dry; aborts on a result out of contract. */
static void drain(struct tls_rec *r, int fd, size_t chunk, bool *done)
{
    unsigned char buf[16384];
    for (int guard = 0; !*done && guard < 4096; guard++) {
        int err;
        ssize_t n = tls_rec_read(r, fd, buf, chunk, &err);
        if (n == EG_AGAIN)
            return;
        if (n == 0 || n == EG_ERR) {
            *done = true;
            return;
        }
        if (n < 0 || (size_t)n > chunk)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 2)
        return 0;
    int s = data[0] % 3;
    size_t chunk = 1 + data[1] * 64;
    data += 2, size -= 2;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 0;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct tls_rec *server = tls_rec_new(suites[s], client_secret, server_secret, lens[s]);
    struct tls_rec *client = tls_rec_new(suites[s], server_secret, client_secret, lens[s]);
    if (!server || !client)
        abort();
    bool done = false;
    /* Each piece: a mode byte (bit 0: raw, else protected; bits 1-7: the
     * content type), a 2-byte length (little-endian), then that many bytes. */
    while (size >= 3 && !done) {
        unsigned mode = data[0];
        size_t len = MIN((size_t)(data[1] | data[2] << 8), size - 3);
        const unsigned char *p = data + 3;
        data += 3 + len, size -= 3 + len;
        int err;
        if (mode & 1) {
            if (write(sv[1], p, len) < 0)
                break;
        } else if (tls_rec_send_record(client, sv[1], (int)(mode >> 1), p, len, &err) < 0) {
            break;
        }
        drain(server, sv[0], chunk, &done);
        if (!done && tls_rec_write(server, sv[0], "reply", 5, &err) == EG_ERR)
            done = true;
    }
    shutdown(sv[1], SHUT_WR);
    drain(server, sv[0], chunk, &done);
    tls_rec_free(server);
    tls_rec_free(client);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
