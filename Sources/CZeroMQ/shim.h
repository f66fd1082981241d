#ifndef DEALSTREAM_CZEROMQ_SHIM_H
#define DEALSTREAM_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
