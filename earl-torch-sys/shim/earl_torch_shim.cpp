// earl-torch-sys C++ shim: the libtorch entry points tch 0.24 does not expose, as extern "C" functions over tch's
// tensor handles (a tch `C_tensor*` is an `at::Tensor*`, see torch-sys's libtch/torch_api.h).
//
// Conventions, relied on by src/ffi.rs:
// - every fallible function returns NULL on success, or a malloc'ed one-line message that the caller releases with
//   earl_torch_free_error. No C++ exception crosses the boundary (`guarded` catches all of them).
// - tensors arrive as arrays of `at::Tensor*` plus a length; tensors returned are heap `at::Tensor`s that tch takes
//   ownership of (`Tensor::from_ptr`; tch frees them with `delete`, at_free).
// - CUDA streams travel as their packed (stream id, device index) pair (`CUDAStream::pack3`), CUDA graph pools as
//   their `MempoolId_t` pair.
// - CUDA entry points first check for a device, so a CPU-only process gets an error, never a crash.
//
// Only the headers needed are included (no <torch/torch.h>, no <ATen/ATen.h>): this file is compiled by every clean
// build, on CI's two cores.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/cuda/MemPool.h>
#include <ATen/core/CachingHostAllocator.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_fused_adamw.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Returned when the message itself cannot be allocated; never freed.
char kOutOfMemory[] = "out of memory while reporting a libtorch error";

char* dup_message(const char* msg) {
  std::string line(msg);
  // One-line errors: torch's messages may span lines.
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  char* out = static_cast<char*>(std::malloc(line.size() + 1));
  if (out == nullptr) return kOutOfMemory;
  std::memcpy(out, line.c_str(), line.size() + 1);
  return out;
}

template <typename F>
char* guarded(F&& body) noexcept {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return dup_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dup_message(e.what());
  } catch (...) {
    return dup_message("unknown C++ exception");
  }
}

std::vector<at::Tensor> tensor_list(at::Tensor* const* tensors, size_t n) {
  std::vector<at::Tensor> list;
  list.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    TORCH_CHECK(tensors[i] != nullptr, "tensor ", i, " is a null pointer");
    list.push_back(*tensors[i]);
  }
  return list;
}

void require_cuda() {
  if (c10::cuda::device_count() == 0) throw std::runtime_error("needs CUDA, and no CUDA device is available");
}

// -1 is the current device, as in c10.
c10::DeviceIndex checked_device(int32_t device) {
  require_cuda();
  TORCH_CHECK(device >= -1 && device < c10::cuda::device_count(), "CUDA device ", device, " does not exist (",
              static_cast<int>(c10::cuda::device_count()), " devices)");
  return static_cast<c10::DeviceIndex>(device);
}

c10::cuda::CUDAStream stream_of(int64_t id, int32_t device) {
  return c10::cuda::CUDAStream::unpack3(id, checked_device(device), c10::DeviceType::CUDA);
}

void write_stream(const c10::cuda::CUDAStream& stream, int64_t* id, int32_t* device) {
  const auto packed = stream.pack3();
  *id = packed.stream_id;
  *device = packed.device_index;
}

}  // namespace

extern "C" {

// The hyper-parameters of one fused AdamW step (src/ffi.rs mirrors this layout).
struct EarlAdamW {
  double lr;
  double beta1;
  double beta2;
  double weight_decay;
  double eps;
  int32_t amsgrad;
  int32_t maximize;
};

// The tensor lists of one fused AdamW step: n of each, except max_exp_avg_sqs (n_max: n with amsgrad, else 0).
// grad_scale and found_inf may be NULL.
struct EarlAdamWTensors {
  at::Tensor* const* params;
  at::Tensor* const* grads;
  at::Tensor* const* exp_avgs;
  at::Tensor* const* exp_avg_sqs;
  at::Tensor* const* max_exp_avg_sqs;
  at::Tensor* const* state_steps;
  size_t n;
  size_t n_max;
  at::Tensor* grad_scale;
  at::Tensor* found_inf;
};

void earl_torch_free_error(char* error) {
  if (error != kOutOfMemory) std::free(error);
}

// ---- multi-tensor and fused optimizer ops (CPU and CUDA). They update optimizer state, so they run without
// ---- autograd recording, as torch.optim does under torch.no_grad().

char* earl_foreach_add_scalar_(at::Tensor* const* tensors, size_t n, double scalar) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    at::_foreach_add_(tensor_list(tensors, n), scalar);
  });
}

char* earl_foreach_add_list_(at::Tensor* const* tensors, at::Tensor* const* others, size_t n, double alpha) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    at::_foreach_add_(tensor_list(tensors, n), tensor_list(others, n), alpha);
  });
}

char* earl_foreach_mul_scalar_(at::Tensor* const* tensors, size_t n, double scalar) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    at::_foreach_mul_(tensor_list(tensors, n), scalar);
  });
}

char* earl_foreach_mul_tensor_(at::Tensor* const* tensors, size_t n, at::Tensor* factor) {
  return guarded([&] {
    TORCH_CHECK(factor != nullptr, "factor is a null pointer");
    at::NoGradGuard no_grad;
    at::_foreach_mul_(tensor_list(tensors, n), *factor);
  });
}

// Writes n new tensors to out.
char* earl_foreach_norm(at::Tensor* const* tensors, size_t n, double ord, at::Tensor** out) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    auto norms = at::_foreach_norm(tensor_list(tensors, n), ord);
    TORCH_CHECK(norms.size() == n, "_foreach_norm returned ", norms.size(), " tensors for ", n);
    std::vector<std::unique_ptr<at::Tensor>> owned;
    owned.reserve(n);
    for (auto& norm : norms) owned.push_back(std::make_unique<at::Tensor>(std::move(norm)));
    for (size_t i = 0; i < n; ++i) out[i] = owned[i].release();
  });
}

char* earl_fused_adamw_(const EarlAdamWTensors* t, const EarlAdamW* hp) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    std::optional<at::Tensor> grad_scale;
    std::optional<at::Tensor> found_inf;
    if (t->grad_scale != nullptr) grad_scale = *t->grad_scale;
    if (t->found_inf != nullptr) found_inf = *t->found_inf;
    at::_fused_adamw_(tensor_list(t->params, t->n), tensor_list(t->grads, t->n), tensor_list(t->exp_avgs, t->n),
                      tensor_list(t->exp_avg_sqs, t->n), tensor_list(t->max_exp_avg_sqs, t->n_max),
                      tensor_list(t->state_steps, t->n), hp->lr, hp->beta1, hp->beta2, hp->weight_decay, hp->eps,
                      hp->amsgrad != 0, hp->maximize != 0, grad_scale, found_inf);
  });
}

// ---- determinism: torch.use_deterministic_algorithms(on) (warn_only=False) and the cuDNN flags.

char* earl_set_deterministic(int32_t on) {
  return guarded([&] {
    auto& context = at::globalContext();
    context.setDeterministicAlgorithms(on != 0, /*warn_only=*/false);
    context.setDeterministicCuDNN(on != 0);
    // Benchmark mode picks kernels by timing, so it is off under determinism; turning determinism off leaves it.
    if (on != 0) context.setBenchmarkCuDNN(false);
  });
}

char* earl_get_determinism(int32_t* algorithms, int32_t* warn_only, int32_t* cudnn_deterministic,
                           int32_t* cudnn_benchmark) {
  return guarded([&] {
    const auto& context = at::globalContext();
    *algorithms = context.deterministicAlgorithms();
    *warn_only = context.deterministicAlgorithmsWarnOnly();
    *cudnn_deterministic = context.deterministicCuDNN();
    *cudnn_benchmark = context.benchmarkCuDNN();
  });
}

// ---- CUDA streams.

char* earl_cuda_stream_from_pool(int32_t high_priority, int32_t device, int64_t* id, int32_t* out_device) {
  return guarded([&] {
    write_stream(c10::cuda::getStreamFromPool(high_priority != 0, checked_device(device)), id, out_device);
  });
}

char* earl_cuda_current_stream(int32_t device, int64_t* id, int32_t* out_device) {
  return guarded([&] { write_stream(c10::cuda::getCurrentCUDAStream(checked_device(device)), id, out_device); });
}

char* earl_cuda_default_stream(int32_t device, int64_t* id, int32_t* out_device) {
  return guarded([&] { write_stream(c10::cuda::getDefaultCUDAStream(checked_device(device)), id, out_device); });
}

char* earl_cuda_set_current_stream(int64_t id, int32_t device) {
  return guarded([&] { c10::cuda::setCurrentCUDAStream(stream_of(id, device)); });
}

char* earl_cuda_stream_synchronize(int64_t id, int32_t device) {
  return guarded([&] { stream_of(id, device).synchronize(); });
}

// ---- CUDA graphs.

// A graph pool that holds its own references. libtorch keeps two pools per id: the device caching allocator's and,
// since 2.11, the pinned host allocator's. Each frees its pool once its use count reaches zero and then refuses the
// id to a new capture (an internal `use_count > 0` assert), so a bare graph_pool_handle() id breaks as soon as the
// last graph captured into it is dropped and another capture follows. An at::cuda::MemPool counts as a user of the
// device pool; the host pool gets one more user here (an empty allocate-to-pool window whose filter matches no
// stream), given back when the pool is deleted.
char* earl_cuda_mempool_new(at::cuda::MemPool** out, uint64_t* pool_a, uint64_t* pool_b) {
  return guarded([&] {
    require_cuda();
    auto pool = std::make_unique<at::cuda::MemPool>();
    const auto id = pool->id();
    auto* host = at::getHostAllocator(at::kCUDA);
    host->begin_allocate_to_pool(id, [](c10::Stream) { return false; });
    host->end_allocate_to_pool(id);
    *pool_a = id.first;
    *pool_b = id.second;
    *out = pool.release();
  });
}

void earl_cuda_mempool_delete(at::cuda::MemPool* pool) {
  if (pool == nullptr) return;
  try {
    at::getHostAllocator(at::kCUDA)->release_pool(pool->id());
  } catch (...) {
    // Nothing to hand back to: deleting the device pool is still right.
  }
  delete pool;
}

char* earl_cuda_graph_new(at::cuda::CUDAGraph** out) {
  return guarded([&] {
    require_cuda();
    *out = new at::cuda::CUDAGraph(/*keep_graph=*/false);
  });
}

void earl_cuda_graph_delete(at::cuda::CUDAGraph* graph) { delete graph; }

// pool (0, 0) asks for a private pool; mode is cudaStreamCaptureMode (0 global, 1 thread-local, 2 relaxed).
char* earl_cuda_graph_capture_begin(at::cuda::CUDAGraph* graph, uint64_t pool_a, uint64_t pool_b, int32_t mode) {
  return guarded([&] {
    TORCH_CHECK(mode >= 0 && mode <= 2, "unknown capture mode ", mode);
    graph->capture_begin({pool_a, pool_b}, static_cast<cudaStreamCaptureMode>(mode));
  });
}

char* earl_cuda_graph_capture_end(at::cuda::CUDAGraph* graph) {
  return guarded([&] { graph->capture_end(); });
}

char* earl_cuda_graph_replay(at::cuda::CUDAGraph* graph) {
  return guarded([&] { graph->replay(); });
}

char* earl_cuda_graph_reset(at::cuda::CUDAGraph* graph) {
  return guarded([&] { graph->reset(); });
}

char* earl_cuda_graph_pool(at::cuda::CUDAGraph* graph, uint64_t* pool_a, uint64_t* pool_b) {
  return guarded([&] {
    const auto pool = graph->pool();
    *pool_a = pool.first;
    *pool_b = pool.second;
  });
}

}  // extern "C"
