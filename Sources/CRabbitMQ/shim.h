#ifndef CRABBITMQ_SHIM_H
#define CRABBITMQ_SHIM_H

/* rabbitmq-c 0.11 (Debian 12) installs its headers at the top of /usr/include;
   0.12 and later move them under rabbitmq-c/. Support both. */
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

/* amqp_login and amqp_login_with_properties are variadic, which Swift cannot
   call. These shims fix the SASL method to PLAIN (username, password), the
   only one the AMQP layer offers. */
static inline amqp_rpc_reply_t crabbitmq_login_plain(
    amqp_connection_state_t state, char const *vhost, int channel_max,
    int frame_max, int heartbeat, amqp_table_t const *client_properties,
    char const *username, char const *password) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max,
                                    heartbeat, client_properties,
                                    AMQP_SASL_METHOD_PLAIN, username, password);
}

#endif
