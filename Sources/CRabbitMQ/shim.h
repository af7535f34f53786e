#ifndef CRABBITMQ_SHIM_H
#define CRABBITMQ_SHIM_H

/* rabbitmq-c 0.11 (Debian 12) installs its headers at the top of /usr/include;
   0.12 and later move them under rabbitmq-c/. Support both. */
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

#include <stdint.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

/* amqp_login and amqp_login_with_properties are variadic, which Swift cannot
   call. These shims fix the SASL method: PLAIN (username, password) or
   EXTERNAL (an identity; RabbitMQ takes the user from the client
   certificate and ignores it). */
static inline amqp_rpc_reply_t crabbitmq_login_plain(
    amqp_connection_state_t state, char const *vhost, int channel_max,
    int frame_max, int heartbeat, amqp_table_t const *client_properties,
    char const *username, char const *password) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max,
                                    heartbeat, client_properties,
                                    AMQP_SASL_METHOD_PLAIN, username, password);
}

static inline amqp_rpc_reply_t crabbitmq_login_external(
    amqp_connection_state_t state, char const *vhost, int channel_max,
    int frame_max, int heartbeat, amqp_table_t const *client_properties,
    char const *identity) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max,
                                    heartbeat, client_properties,
                                    AMQP_SASL_METHOD_EXTERNAL, identity);
}

/* Why a certificate failed to verify. rabbitmq-c 0.11 verifies the broker's
   chain after the handshake (SSL_get_verify_result) and reports every
   failure as AMQP_STATUS_SSL_PEER_VERIFY_FAILED, then frees the SSL object:
   the X509 reason (unknown CA, expired, ...) is lost. rabbitmq-c never sets
   a verify mode or callback on its SSL_CTX, so this installs one with the
   same mode (SSL_VERIFY_NONE: the handshake still completes and rabbitmq-c
   still decides) that records the first X509 error in the context's app
   data. The context lives as long as the socket, i.e. the connection. */
static inline int crabbitmq_record_verify_error(int preverify_ok,
                                                X509_STORE_CTX *store) {
  if (!preverify_ok) {
    SSL *ssl = (SSL *)X509_STORE_CTX_get_ex_data(
        store, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl) {
      SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
      if (ctx && SSL_CTX_get_app_data(ctx) == NULL) {
        intptr_t error = X509_STORE_CTX_get_error(store);
        SSL_CTX_set_app_data(ctx, (void *)(error + 1));
      }
    }
  }
  return preverify_ok;
}

static inline void crabbitmq_ssl_socket_record_verify_errors(
    amqp_socket_t *socket) {
  SSL_CTX *ctx = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
  if (ctx) {
    SSL_CTX_set_app_data(ctx, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, crabbitmq_record_verify_error);
  }
}

/* The first X509 verify error of the last handshake (X509_V_ERR_*), or 0;
   its text in *text (static storage of OpenSSL). */
static inline long crabbitmq_ssl_socket_verify_error(amqp_socket_t *socket,
                                                     char const **text) {
  SSL_CTX *ctx = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
  *text = NULL;
  if (!ctx) return 0;
  intptr_t stored = (intptr_t)SSL_CTX_get_app_data(ctx);
  if (stored == 0) return 0;
  long error = (long)(stored - 1);
  *text = X509_verify_cert_error_string(error);
  return error;
}

#endif
