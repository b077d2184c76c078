// Private (server): noticing that a client went away. httplib 0.11 does not
// hand a handler its connection, so it is found among this process's
// descriptors by its address pair. Any thread.
#pragma once

#include <httplib.h>

namespace tp::server {

// The socket of the connection that sent `req`, or -1 (unique while the
// handler runs, because the connection stays open until it returns).
int connection_fd(const httplib::Request& req);

// True when the peer of `fd` has closed or reset the connection.
bool peer_gone(int fd);

}  // namespace tp::server
