// gloo.cc: the Gloo shim, the only C++ in lib/ (dist_internal.h declares it).  A full mesh
// of TCP pairs whose addresses go through slimnet's rendezvous store (store.c), and the
// three collectives the process group needs.  Gloo reports failures by exception; every one
// is caught here and handed to C as a message.
#include "dist_internal.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

namespace {

// Gloo's Store interface over slimnet's store: get waits (the key may not be there yet).
class Store : public gloo::rendezvous::Store {
 public:
  Store(sn__store* s, int timeout_ms) : s_(s), timeout_ms_(timeout_ms) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    if (sn__store_set(s_, key.c_str(), data.data(), data.size()) != 0)
      throw gloo::IoException(sn__store_error(s_));
  }

  std::vector<char> get(const std::string& key) override {
    void* val = nullptr;
    size_t n = 0;
    int r = sn__store_get(s_, key.c_str(), timeout_ms_, &val, &n);
    if (r < 0) throw gloo::IoException(sn__store_error(s_));
    if (r > 0) throw gloo::IoException("rendezvous: '" + key + "' did not come in time");
    std::vector<char> out(static_cast<char*>(val), static_cast<char*>(val) + n);
    free(val);
    return out;
  }

  void wait(const std::vector<std::string>& keys) override {
    wait(keys, std::chrono::milliseconds(timeout_ms_));
  }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    for (const auto& key : keys) {
      void* val = nullptr;
      size_t n = 0;
      int r = sn__store_get(s_, key.c_str(), static_cast<int>(timeout.count()), &val, &n);
      free(val);
      if (r < 0) throw gloo::IoException(sn__store_error(s_));
      if (r > 0) throw gloo::IoException("rendezvous: '" + key + "' did not come in time");
    }
  }

 private:
  sn__store* s_;
  int timeout_ms_;
};

void copy_error(const char* what, char* err, size_t cap) {
  if (err && cap) std::snprintf(err, cap, "%s", what);
}

// Runs f, Gloo's exceptions caught: 0, or -1 with the message in err.
template <typename F>
int guard(char* err, size_t cap, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    copy_error(e.what(), err, cap);
  } catch (...) {
    copy_error("unknown exception from Gloo", err, cap);
  }
  return -1;
}

}  // namespace

struct sn__gloo {
  std::unique_ptr<Store> store;
  std::shared_ptr<gloo::rendezvous::Context> context;
  std::chrono::milliseconds timeout;
};

extern "C" int sn__gloo_new(sn__store* store, int rank, int size, const char* host,
                            int timeout_ms, sn__gloo** out, char* err, size_t cap) {
  *out = nullptr;
  return guard(err, cap, [&] {
    auto g = std::unique_ptr<sn__gloo>(new sn__gloo);
    g->timeout = std::chrono::milliseconds(timeout_ms);
    g->store.reset(new Store(store, timeout_ms));
    gloo::rendezvous::PrefixStore prefixed("gloo", *g->store);
    gloo::transport::tcp::attr attr;
    attr.hostname = host;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    g->context = std::make_shared<gloo::rendezvous::Context>(rank, size);
    g->context->setTimeout(g->timeout);
    g->context->connectFullMesh(prefixed, device);
    *out = g.release();
  });
}

extern "C" void sn__gloo_free(sn__gloo* g) {
  delete g;
}

namespace {
using Reduce = void (*)(void*, const void*, const void*, size_t);
}

extern "C" int sn__gloo_allreduce_sum(sn__gloo* g, void* buf, size_t n, int type, uint32_t tag,
                                      char* err, size_t cap) {
  return guard(err, cap, [&] {
    gloo::AllreduceOptions opts(g->context);
    opts.setTag(tag);
    opts.setTimeout(g->timeout);
    switch (type) {
      case SN__GLOO_F32:
        opts.setOutput(static_cast<float*>(buf), n);
        opts.setReduceFunction(static_cast<Reduce>(&gloo::sum<float>));
        break;
      case SN__GLOO_I32:
        opts.setOutput(static_cast<int32_t*>(buf), n);
        opts.setReduceFunction(static_cast<Reduce>(&gloo::sum<int32_t>));
        break;
      default:
        opts.setOutput(static_cast<int64_t*>(buf), n);
        opts.setReduceFunction(static_cast<Reduce>(&gloo::sum<int64_t>));
        break;
    }
    gloo::allreduce(opts);
  });
}

extern "C" int sn__gloo_broadcast(sn__gloo* g, void* buf, size_t bytes, int root, uint32_t tag,
                                  char* err, size_t cap) {
  return guard(err, cap, [&] {
    gloo::BroadcastOptions opts(g->context);
    opts.setTag(tag);
    opts.setTimeout(g->timeout);
    opts.setRoot(root);
    opts.setOutput(static_cast<uint8_t*>(buf), bytes);
    gloo::broadcast(opts);
  });
}

extern "C" int sn__gloo_barrier(sn__gloo* g, uint32_t tag, char* err, size_t cap) {
  return guard(err, cap, [&] {
    gloo::BarrierOptions opts(g->context);
    opts.setTag(tag);
    opts.setTimeout(g->timeout);
    gloo::barrier(opts);
  });
}

// ---- point-to-point messages (the parameter servers, ps.c) ---------------------------------
// Gloo's unbound buffers: a send completes once the receiver has posted a matching recv and
// the bytes are written; a recv may name one source or several (whichever sends first).
// A wait that times out makes Gloo close every pair of the context, so the ps tasks never
// wait with a timeout: another thread aborts their waits (sn__gloo_abort_recv).

struct sn__gloo_buf {
  std::unique_ptr<gloo::transport::UnboundBuffer> buf;
};

extern "C" int sn__gloo_buf_new(sn__gloo* g, void* p, size_t bytes, sn__gloo_buf** out,
                                char* err, size_t cap) {
  *out = nullptr;
  return guard(err, cap, [&] {
    auto b = std::unique_ptr<sn__gloo_buf>(new sn__gloo_buf);
    b->buf = g->context->createUnboundBuffer(p, bytes);
    *out = b.release();
  });
}

extern "C" void sn__gloo_buf_free(sn__gloo_buf* b) {
  delete b;
}

extern "C" int sn__gloo_send(sn__gloo_buf* b, int dst, uint64_t slot, size_t bytes, char* err,
                             size_t cap) {
  return guard(err, cap, [&] { b->buf->send(dst, slot, 0, bytes); });
}

extern "C" int sn__gloo_recv(sn__gloo_buf* b, int src, uint64_t slot, char* err, size_t cap) {
  return guard(err, cap, [&] { b->buf->recv(src, slot); });
}

// (the context's list, not a pair's: a pair that closes later does not fail this receive)
extern "C" int sn__gloo_recv_any(sn__gloo_buf* b, const int* src, int n_src, uint64_t slot,
                                 char* err, size_t cap) {
  return guard(err, cap, [&] { b->buf->recv(std::vector<int>(src, src + n_src), slot); });
}

namespace {
std::chrono::milliseconds wait_ms(int timeout_ms) {
  // "no timeout": a year, as Gloo has no unbounded wait of its own
  return std::chrono::milliseconds(timeout_ms < 0 ? 365LL * 86400 * 1000 : timeout_ms);
}
}  // namespace

extern "C" int sn__gloo_wait_send(sn__gloo_buf* b, int timeout_ms, char* err, size_t cap) {
  bool done = false;
  int r = guard(err, cap, [&] { done = b->buf->waitSend(nullptr, wait_ms(timeout_ms)); });
  return r ? r : done ? 0 : 1;
}

extern "C" int sn__gloo_wait_recv(sn__gloo_buf* b, int timeout_ms, int* src, char* err,
                                  size_t cap) {
  bool done = false;
  int r = guard(err, cap, [&] { done = b->buf->waitRecv(src, wait_ms(timeout_ms)); });
  return r ? r : done ? 0 : 1;
}

extern "C" void sn__gloo_abort_recv(sn__gloo_buf* b) {
  b->buf->abortWaitRecv();
}

extern "C" int sn__gloo_send_at(sn__gloo_buf* b, int dst, uint64_t slot, size_t offset,
                                size_t bytes, char* err, size_t cap) {
  return guard(err, cap, [&] { b->buf->send(dst, slot, offset, bytes); });
}
