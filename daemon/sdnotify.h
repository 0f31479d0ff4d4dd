/*
 * daemon/sdnotify.h — the systemd notification protocol (sd_notify(3)) for Type=notify
 * units: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1, sent as one datagram to the
 * AF_UNIX socket named by $NOTIFY_SOCKET. Implemented here directly (the protocol is a
 * datagram of KEY=VALUE lines), so ssmd needs no libsystemd; outside systemd every call
 * is a no-op. Thread-safe: each call opens its own socket.
 */
#ifndef SSMD_SDNOTIFY_H
#define SSMD_SDNOTIFY_H

#include <stdint.h>

/* Sends "KEY=VALUE\n..." (printf-style) to $NOTIFY_SOCKET. Returns 1 when sent, 0 when
 * not under systemd (no $NOTIFY_SOCKET), -1 on a send error. */
int ssmd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval systemd asks for ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or
 * this process), in microseconds; 0 when no watchdog is enabled. */
uint64_t ssmd_notify_watchdog_usec(void);

#endif
