// Selective scan kernels for d_state 1 (VMamba's N = 1): one warp per (batch, channel) row.
//
// Why a second layout: the generic kernels (forward.cu / backward.cu) give each lane a row and walk it one step
// at a time, so a stage-1 VMamba-T scan (49152 rows) keeps only ~12 warps per SM busy, each waiting on one load
// per step. Here W lanes own a row (a whole warp; 8 lanes, four rows per warp, for sequences <= 128 steps) and
// take W x kItems consecutive steps per iteration (kFwdItems = 8 forward, kBwdItems = 4 backward: common.cuh):
// every lane loads its kItems steps at once (vector loads when the rows allow), scans them in registers and the
// W lane results are combined with a segmented warp scan of the pairs (a, b) of h -> a h + b (log2 W shuffle
// levels), so the sequential part per row is L / (W kItems) iterations and there is a segment of lanes per row.
//
// Backward (per row, chunks of W x kBwdItems steps in reverse): the chunk's states are recomputed the same way
// from the state the forward saved at the chunk's start; the adjoint g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}
// is the same scan run backwards (pairs composed from lane W-1 down, with the next chunk's first decay and
// adjoint carried in). dB/dC sum over the channels of a group: when a block's rows (kRowWarps x 32 / W) share
// one (batch, group) the block adds them in shared memory and writes one partial row per block (no atomics: the
// host sums a group's partials; two buffers, one barrier per chunk); otherwise each lane adds its own terms
// atomically.
//
// Staged loads (rows in whole 16-byte vectors; the backward always, the forward for 16-bit inputs): each lane
// copies its inputs of the next iteration into its own shared-memory slots with cp.async while it computes the
// current one, so loads are in flight without registers held for them (run 25: fp32 fwd+bwd 1.16x, bf16 1.42x at
// VMamba-T stage 1 for the backward; 1.8x for the bf16 forward).
#include "common.cuh"

#include <algorithm>
#include <mutex>
#include <set>
#include <utility>

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace vmz {

namespace {

// shuffles inside segments of W lanes (one row per segment)
template <int W>
__device__ __forceinline__ float shfl_up(float v, int d) { return __shfl_up_sync(0xffffffffu, v, d, W); }
template <int W>
__device__ __forceinline__ float shfl_down(float v, int d) { return __shfl_down_sync(0xffffffffu, v, d, W); }
template <int W>
__device__ __forceinline__ float shfl_at(float v, int lane) { return __shfl_sync(0xffffffffu, v, lane, W); }

template <int W>
__device__ __forceinline__ float segment_total(float v) {
#pragma unroll
  for (int offset = W / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset, W);
  return v;
}

// inclusive scan of the lanes' maps h -> prod h + acc over a segment of W lanes: forward (kUp), lane j ends with
// lanes 0..j composed (its own map applied last); reverse, with lanes j..W-1 (its own applied last, walking down)
template <int W, bool kUp>
__device__ __forceinline__ void segment_scan(float& prod, float& acc, int lane) {
#pragma unroll
  for (int off = 1; off < W; off <<= 1) {
    const float p_other = kUp ? shfl_up<W>(prod, off) : shfl_down<W>(prod, off);
    const float a_other = kUp ? shfl_up<W>(acc, off) : shfl_down<W>(acc, off);
    if (kUp ? lane >= off : lane + off < W) {
      acc = prod * a_other + acc;
      prod = prod * p_other;
    }
  }
}

// The SFU's exp2 / log2 / reciprocal with denormals flushed (ex2/lg2/rcp.approx.ftz). __expf / __logf compile
// to the same instructions plus a denormal fix-up (a compare and two multiplies per call) and __frcp_rn to a
// call with a slow path; none is needed here: a flushed decay or gate (< 1e-38) moves no result past the
// tolerances. asm without side effects, so the compiler may still schedule or drop them.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float log2_ftz(float x) {
  float y;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float rcp_ftz(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
__device__ __forceinline__ float fast_exp(float x) { return exp2_ftz(x * kLog2e); }
// both sides computed and one selected: as `x > 20 ? x : log(1 + exp(x))` nvcc branched per step (BSSY/BSYNC
// and a divergent jump around the SFU calls); above 20 the unused side may be inf, never selected
__device__ __forceinline__ float fast_softplus(float x) {
  const float soft = log2_ftz(1.f + fast_exp(x)) * kLn2;
  return x > 20.f ? x : soft;
}
__device__ __forceinline__ float fast_sigmoid(float x) { return rcp_ftz(1.f + fast_exp(-x)); }

// 16-bit values from / to their bits (no trip through memory)
template <typename T>
__device__ __forceinline__ float from_bits(uint16_t bits);
template <>
__device__ __forceinline__ float from_bits<c10::BFloat16>(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}
template <>
__device__ __forceinline__ float from_bits<c10::Half>(uint16_t bits) {
  return __half2float(__ushort_as_half(bits));
}
template <typename T>
__device__ __forceinline__ uint16_t to_bits(float v);
template <>
__device__ __forceinline__ uint16_t to_bits<c10::BFloat16>(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
template <>
__device__ __forceinline__ uint16_t to_bits<c10::Half>(float v) {
  return __half_as_ushort(__float2half_rn(v));
}

__host__ __device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// a lane's run of ITEMS steps of T moves in vectors of kBytes (16 bytes, or the whole run when it is shorter)
template <int ITEMS, typename T>
struct LaneVectors {
  static constexpr int kBytes = ITEMS * sizeof(T) < 16 ? ITEMS * sizeof(T) : 16;
  static constexpr int kPer = kBytes / sizeof(T);  // steps per vector
  static constexpr int kWords = kBytes / 4;        // 32-bit words per vector
  static_assert(kBytes % 4 == 0 && ITEMS % kPer == 0, "a lane's steps must fill whole vectors of 32-bit words");
};

template <int WORDS>
__device__ __forceinline__ void load_words(uint32_t (&w)[WORDS], const void* p) {
  if constexpr (WORDS == 4) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else if constexpr (WORDS == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x, w[1] = v.y;
  } else {
    w[0] = *reinterpret_cast<const uint32_t*>(p);
  }
}

template <int WORDS>
__device__ __forceinline__ void store_words(void* p, const uint32_t (&w)[WORDS]) {
  if constexpr (WORDS == 4) {
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  } else if constexpr (WORDS == 2) {
    *reinterpret_cast<uint2*>(p) = make_uint2(w[0], w[1]);
  } else {
    *reinterpret_cast<uint32_t*>(p) = w[0];
  }
}

// the floats of one vector of kPer steps, from its 32-bit words
template <int ITEMS, typename T>
__device__ __forceinline__ void unpack_vector(float* v, const uint32_t (&words)[LaneVectors<ITEMS, T>::kWords]) {
  using V = LaneVectors<ITEMS, T>;
#pragma unroll
  for (int w = 0; w < V::kWords; ++w) {
    if constexpr (sizeof(T) == 4) {
      v[w] = __uint_as_float(words[w]);
    } else {
      v[2 * w] = from_bits<T>(static_cast<uint16_t>(words[w] & 0xffffu));
      v[2 * w + 1] = from_bits<T>(static_cast<uint16_t>(words[w] >> 16));
    }
  }
}

// v[i] <- p[t0 + i] (0 past `length`): in vectors when `vec` (16-byte aligned rows) and the lane's steps lie
// wholly before `length`, element by element otherwise. One test per lane, not per vector: bounds per vector
// cost 8 registers in the forward (88 instead of 80: 2 blocks per SM instead of 3) and ~10% of the backward's
// time (run 23a).
template <int ITEMS, typename T>
__device__ __forceinline__ void load_items(float (&v)[ITEMS], const T* p, int t0, int length, bool vec) {
  using V = LaneVectors<ITEMS, T>;
  if (vec && t0 + ITEMS <= length) {
#pragma unroll
    for (int k = 0; k < ITEMS / V::kPer; ++k) {
      uint32_t words[V::kWords];
      load_words(words, p + t0 + k * V::kPer);
      unpack_vector<ITEMS, T>(v + V::kPer * k, words);
    }
  } else {
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) v[i] = t0 + i < length ? static_cast<float>(p[t0 + i]) : 0.f;
  }
}

template <int ITEMS, typename T>
__device__ __forceinline__ void store_items(T* p, const float (&v)[ITEMS], int t0, int length, bool vec) {
  using V = LaneVectors<ITEMS, T>;
  if (vec && t0 + ITEMS <= length) {
#pragma unroll
    for (int k = 0; k < ITEMS / V::kPer; ++k) {
      uint32_t words[V::kWords];
#pragma unroll
      for (int w = 0; w < V::kWords; ++w) {
        if constexpr (sizeof(T) == 4) {
          words[w] = __float_as_uint(v[V::kPer * k + w]);
        } else {
          words[w] = static_cast<uint32_t>(to_bits<T>(v[V::kPer * k + 2 * w])) |
                     (static_cast<uint32_t>(to_bits<T>(v[V::kPer * k + 2 * w + 1])) << 16);
        }
      }
      store_words(p + t0 + k * V::kPer, words);
    }
  } else {
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
      if (t0 + i < length) p[t0 + i] = static_cast<T>(v[i]);
  }
}

// cp.async (sm_80+): a copy global -> shared memory that the issuing lane waits for later (wait_group), so the
// next chunk's loads are in flight while this one is computed without holding registers for them. 16-byte
// copies bypass L1 (.cg); shorter ones (16-bit inputs at 4 steps per lane) must go through it (.ca). Out of
// range: 0 source bytes, the destination is zero-filled and nothing is read (`src` is then a valid base anyway).
// Before sm_80 there is no cp.async: the copy is a plain load and store, and commit / wait do nothing.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define VMZ_NO_CP_ASYNC 1
#endif
template <int BYTES>
__device__ __forceinline__ void copy_async(void* dst, const void* src, bool in_range) {
#ifdef VMZ_NO_CP_ASYNC
  uint32_t words[BYTES / 4];
  if (in_range) {
    load_words(words, src);
  } else {
#pragma unroll
    for (int w = 0; w < BYTES / 4; ++w) words[w] = 0u;
  }
  store_words(dst, words);
#else
  const uint32_t to = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  const int n = in_range ? BYTES : 0;
  if constexpr (BYTES == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(src), "r"(n) : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(to), "l"(src), "n"(BYTES), "r"(n)
                 : "memory");
  }
#endif
}
__device__ __forceinline__ void copy_commit() {
#ifndef VMZ_NO_CP_ASYNC
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int PENDING>
__device__ __forceinline__ void copy_wait() {
#ifndef VMZ_NO_CP_ASYNC
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

// A kernel's STREAMS input streams of one iteration (forward: u, delta, B, C; backward: also dout), staged per
// lane in shared memory, two iterations deep: slots [stage][stream][vector][thread] of one vector each, so the
// lanes of a warp read one contiguous run per (stage, stream, vector) and every lane reads only what it copied
// (no barrier needed).
template <typename T, int ITEMS, int THREADS, int STREAMS>
struct Staging {
  using V = LaneVectors<ITEMS, T>;
  static constexpr int kStreams = STREAMS;
  static constexpr int kVecs = ITEMS / V::kPer;
  static constexpr int kBytes = 2 * kStreams * kVecs * THREADS * V::kBytes;
  unsigned char* base;

  __device__ __forceinline__ unsigned char* slot(int stage, int stream, int k) const {
    return base + (((stage * kStreams + stream) * kVecs + k) * THREADS + static_cast<int>(threadIdx.x)) * V::kBytes;
  }
  // the copies of the ITEMS steps at row + t0; a vector past `length` is not read and stays zero (with rows in
  // whole vectors a vector is either wholly before `length` or wholly past it)
  __device__ __forceinline__ void issue(int stage, int stream, const T* row, int t0, int length,
                                        const void* valid_base) const {
#pragma unroll
    for (int k = 0; k < kVecs; ++k) {
      const int t = t0 + k * V::kPer;
      copy_async<V::kBytes>(slot(stage, stream, k), t < length ? static_cast<const void*>(row + t) : valid_base,
                            t < length);
    }
  }
  __device__ __forceinline__ void read(float (&v)[ITEMS], int stage, int stream) const {
#pragma unroll
    for (int k = 0; k < kVecs; ++k) {
      uint32_t words[V::kWords];
      load_words(words, slot(stage, stream, k));
      unpack_vector<ITEMS, T>(v + V::kPer * k, words);
    }
  }
  // iteration `it`'s STREAMS rows (stream s = the s-th row), each from t0, into stage it % 2, as one copy group
  template <typename... Rows>
  __device__ __forceinline__ void issue_iteration(int it, int t0, int length, const void* valid_base,
                                                  const Rows*... rows) const {
    static_assert(sizeof...(Rows) == STREAMS, "one row per staged stream");
    int stream = 0;
    (issue(it & 1, stream++, rows, t0, length, valid_base), ...);
    copy_commit();
  }
  // iteration `it`'s streams, in the order they were issued: when `has_next`, stage_next() first issues the next
  // iteration's copies (they stay in flight); then waits for this iteration's copies and reads them
  template <typename StageNext, typename... Values>
  __device__ __forceinline__ void next_and_read(int it, bool has_next, StageNext stage_next, Values&... v) const {
    static_assert(sizeof...(Values) == STREAMS, "one array per staged stream");
    if (has_next) {
      stage_next();
      copy_wait<1>();
    } else {
      copy_wait<0>();
    }
    int stream = 0;
    (read(v, it & 1, stream++), ...);
  }
};

// the row a segment of W lanes walks (32 / W rows per warp) and its per-row constants
struct Row {
  int64_t row;  // b * channels + d
  int b, d, g;
  bool valid;
};

template <int W>
__device__ __forceinline__ Row segment_row(const ScanArgs& a) {
  Row r;
  r.row = (static_cast<int64_t>(blockIdx.x) * kRowWarps + threadIdx.x / kWarp) * (kWarp / W) +
          (threadIdx.x % kWarp) / W;
  r.valid = r.row < static_cast<int64_t>(a.batch) * a.channels;
  r.b = r.valid ? static_cast<int>(r.row / a.channels) : 0;
  r.d = r.valid ? static_cast<int>(r.row % a.channels) : 0;
  r.g = r.d / a.per_group;
  return r;
}

// what both kernels read of their row: its parameters and the input rows (u, delta, z: the row's own; B, C: its
// (batch, group)'s)
template <typename T>
struct RowInputs {
  float A, bias, D;
  int64_t offset, bc;  // element offsets of the row and of its B/C row
  const T *u, *delta, *z, *B, *C;
};

template <typename T>
__device__ __forceinline__ RowInputs<T> row_inputs(const ScanArgs& a, const Row& r) {
  RowInputs<T> in;
  in.A = r.valid ? a.A[r.d] : 0.f;
  in.bias = (r.valid && a.bias) ? a.bias[r.d] : 0.f;
  in.D = (r.valid && a.D) ? a.D[r.d] : 0.f;
  in.offset = r.row * a.length;
  in.bc = (static_cast<int64_t>(r.b) * a.groups + r.g) * a.length;
  in.u = static_cast<const T*>(a.u) + in.offset;
  in.delta = static_cast<const T*>(a.delta) + in.offset;
  in.z = a.z ? static_cast<const T*>(a.z) + in.offset : nullptr;
  in.B = static_cast<const T*>(a.B) + in.bc;
  in.C = static_cast<const T*>(a.C) + in.bc;
  return in;
}

__host__ __device__ __forceinline__ bool row_vectors(const ScanArgs& a, const void* base, size_t elem) {
  // every row starts on a 16-byte boundary when the base does and a row is a whole number of vectors
  return base != nullptr && aligned16(base) && (static_cast<size_t>(a.length) * elem) % 16 == 0;
}

}  // namespace

// W lanes per row (32, or 8 for short sequences), kFwdItems steps per lane and iteration; the state before every
// W * kBwdItems steps (the backward's chunk) is saved. 3 blocks per SM: 80 registers (run 23a: at 88, 2 blocks per
// SM, the stage-1 fp32 forward took 687 us instead of 522). 16 steps per lane for 16-bit inputs (32 bytes per
// stream in flight, as fp32 has) was tried in run 23a: 128 registers and a stack, 844 us instead of 654 at bf16.
// every stream of the forward in whole 16-byte-aligned vectors (the vector loads and stores, and the staged
// kernels: the host picks those with it)
template <typename T>
__host__ __device__ __forceinline__ bool forward_vectors(const ScanArgs& a) {
  return row_vectors(a, a.u, sizeof(T)) && aligned16(a.delta) && aligned16(a.B) && aligned16(a.C) &&
         aligned16(a.out) && (!a.z || aligned16(a.z));
}

template <typename T, bool kStaged>
constexpr int forward_smem_bytes() {
  return kStaged ? Staging<T, kFwdItems, kRowWarps * kWarp, 4>::kBytes : 0;
}

// kStaged (16-bit rows in whole vectors, VMZ_SINGLE_FWD_STAGED; see launch_forward_rows): u, delta, B and C of
// the next iteration are copied to shared memory (cp.async) while this one is computed, as in the backward.
template <typename T, int W, bool kStaged>
__global__ void __launch_bounds__(kRowWarps * kWarp, kFwdMinBlocks) forward_single_kernel(ScanArgs a) {
  constexpr int kSteps = W * kFwdItems;     // steps per iteration
  constexpr int kChunk = W * kBwdItems;     // steps per saved state (the backward's chunk)
  extern __shared__ __align__(16) unsigned char smem[];
  const Staging<T, kFwdItems, kRowWarps * kWarp, 4> staged{smem};
  const Row r = segment_row<W>(a);
  if (!__any_sync(0xffffffffu, r.valid)) return;  // whole warps only: the shuffles need every lane
  const int lane = threadIdx.x % W;
  const int L = r.valid ? a.length : 0;  // a row past the end touches no memory: all its steps are masked
  const RowInputs<T> in = row_inputs<T>(a, r);
  const float A = in.A, bias = in.bias, Dv = in.D;
  const float A2 = A * kLog2e;  // exp(dt A) = exp2(dt A2)
  const int64_t offset = in.offset;
  const T *u_row = in.u, *dt_row = in.delta, *z_row = in.z, *B_row = in.B, *C_row = in.C;
  T* out_row = static_cast<T*>(a.out) + offset;
  const bool vec = kStaged || forward_vectors<T>(a);
  float* states = a.chunk_states + r.row * a.n_chunks;
  auto stage_iteration = [&](int c) {
    staged.issue_iteration(c, c * kSteps + lane * kFwdItems, L, a.u, u_row, dt_row, B_row, C_row);
  };

  float carry = 0.f;  // the state before the chunk's first step
  const int n_steps = (a.length + kSteps - 1) / kSteps;
  if constexpr (kStaged) stage_iteration(0);
  for (int c = 0; c < n_steps; ++c) {
    const int t0 = c * kSteps + lane * kFwdItems;
    float u[kFwdItems], dt[kFwdItems], Bv[kFwdItems], Cv[kFwdItems], decay[kFwdItems], drive[kFwdItems];
    if constexpr (kStaged) {
      staged.next_and_read(c, c + 1 < n_steps, [&] { stage_iteration(c + 1); }, u, dt, Bv, Cv);
    } else {
      load_items(u, u_row, t0, L, vec);
      load_items(dt, dt_row, t0, L, vec);
      load_items(Bv, B_row, t0, L, vec);
      load_items(Cv, C_row, t0, L, vec);
    }
    // the lane's steps as one map h -> prod * h + acc (steps past L: identity)
    float prod = 1.f, acc = 0.f;
#pragma unroll
    for (int i = 0; i < kFwdItems; ++i) {
      float x = dt[i] + bias;
      if (a.softplus) x = fast_softplus(x);
      const bool live = t0 + i < L;
      decay[i] = live ? exp2_ftz(x * A2) : 1.f;
      drive[i] = live ? x * u[i] * Bv[i] : 0.f;
      acc = decay[i] * acc + drive[i];
      prod *= decay[i];
    }
    // inclusive scan of the lane maps over the segment (lane j's map applied after lanes 0..j-1)
    segment_scan<W, true>(prod, acc, lane);
    const float p_up = shfl_up<W>(prod, 1), a_before = shfl_up<W>(acc, 1);  // shuffles run in every lane
    float h = lane ? p_up * carry + a_before : carry;
    // the lanes that start a backward chunk save the state before it
    if (r.valid && t0 % kChunk == 0 && t0 < L) states[t0 / kChunk] = h;
    const float next_carry = shfl_at<W>(prod, W - 1) * carry + shfl_at<W>(acc, W - 1);
    float y[kFwdItems];
    float zv[kFwdItems];
    if (z_row) load_items(zv, z_row, t0, L, vec);
#pragma unroll
    for (int i = 0; i < kFwdItems; ++i) {
      h = decay[i] * h + drive[i];
      y[i] = Cv[i] * h + Dv * u[i];
      if (z_row) y[i] *= zv[i] * fast_sigmoid(zv[i]);
    }
    store_items(out_row, y, t0, L, vec);
    carry = next_carry;
  }
  if (lane == 0 && r.valid) a.last_state[r.row] = carry;
}

// every stream of the backward in whole 16-byte-aligned vectors (the condition of the vector loads and stores, and
// of the staged kernels: the host picks those with it)
template <typename T>
__host__ __device__ __forceinline__ bool backward_vectors(const ScanArgs& a) {
  return row_vectors(a, a.u, sizeof(T)) && aligned16(a.delta) && aligned16(a.B) && aligned16(a.C) &&
         aligned16(a.dout) && aligned16(a.du) && aligned16(a.ddelta) &&
         (!a.z || (aligned16(a.z) && aligned16(a.dz)));
}

// dynamic shared memory of a backward block: the dB / dC terms of one chunk (kSumBuffers of them), then (kStaged)
// the staged streams
template <typename T, int W, bool kStaged>
constexpr int backward_smem_bytes() {
  constexpr int kRows = kRowWarps * kWarp / W, kSteps = W * kBwdItems;
  constexpr int kTerms = kSumBuffers * 2 * kRows * kSteps * static_cast<int>(sizeof(float));
  return kTerms + (kStaged ? Staging<T, kBwdItems, kRowWarps * kWarp, 5>::kBytes : 0);
}

// 4 steps per lane and 3 blocks per SM (80 registers; 24 warps per SM): in run 24a the same code at 8 steps and
// 2 blocks (128 registers, 16 warps) took 1.07 / 1.15 / 1.13x (fp32) and 1.02 / 1.11 / 1.21x (bf16) the fwd+bwd
// time at VMamba-T's stages 1-3; the shuffle scans per step double, the latency hidden per SM grows more.
// kStaged (rows in whole vectors, VMZ_SINGLE_BWD_STAGED): the five input streams of the chunk before this one are
// copied to shared memory (cp.async) while this one is computed, and the saved state of that chunk is loaded a
// chunk ahead too. The SASS of the unstaged loop showed two serial memory waits per chunk: the stream loads,
// then the saved state's load, which nvcc issues after the first shuffle scan (it does not move loads across
// shuffles) and uses a few instructions later.
template <typename T, int W, bool kStaged>
__global__ void __launch_bounds__(kRowWarps * kWarp, kBwdMinBlocks) backward_single_kernel(ScanArgs a) {
  constexpr int kItems = kBwdItems;
  constexpr int kRows = kRowWarps * kWarp / W;  // rows per block
  constexpr int kSteps = W * kItems;            // steps per chunk
  using Stage = Staging<T, kItems, kRowWarps * kWarp, 5>;
  // the block's dB and dC terms of one chunk, when its rows share one (batch, group); then the staged streams
  extern __shared__ __align__(16) unsigned char smem[];
  float (*const terms)[kSteps] = reinterpret_cast<float (*)[kSteps]>(smem);  // [buffer][B, C][kRows] rows
  const Stage staged{smem + kSumBuffers * 2 * kRows * kSteps * sizeof(float)};
  const Row r = segment_row<W>(a);
  const bool block_sums = a.dBC_part != nullptr;  // binding: only when every block is whole and in one group
  if (!block_sums && !__any_sync(0xffffffffu, r.valid)) return;
  const int lane = threadIdx.x % W;
  const int row_in_block = threadIdx.x / W;
  const int L = r.valid ? a.length : 0;
  const RowInputs<T> in = row_inputs<T>(a, r);
  const float A = in.A, bias = in.bias, Dv = in.D;
  const float A2 = A * kLog2e;  // exp(dt A) = exp2(dt A2)
  const int64_t offset = in.offset, bc = in.bc;
  const T *u_row = in.u, *dt_row = in.delta, *z_row = in.z, *B_row = in.B, *C_row = in.C;
  const T* dout_row = static_cast<const T*>(a.dout) + offset;
  T* du_row = static_cast<T*>(a.du) + offset;
  T* ddelta_row = static_cast<T*>(a.ddelta) + offset;
  T* dz_row = a.z ? static_cast<T*>(a.dz) + offset : nullptr;
  const bool vec = kStaged || backward_vectors<T>(a);
  const float* states = a.chunk_states + r.row * a.n_chunks;
  auto stage_chunk = [&](int c) {
    staged.issue_iteration(c, c * kSteps + lane * kItems, L, a.u, u_row, dt_row, B_row, C_row, dout_row);
  };
  if constexpr (kStaged) stage_chunk(a.n_chunks - 1);
  float next_start = r.valid ? states[a.n_chunks - 1] : 0.f;  // the saved state of the next chunk walked

  float g_carry = 0.f;      // adjoint at the first step of the chunk after this one
  float decay_carry = 0.f;  // exp(dt A) at that step (0: there is none)
  float dA_acc = 0.f, dD_acc = 0.f, dbias_acc = 0.f;
  for (int c = a.n_chunks - 1; c >= 0; --c) {
    const int t0 = c * kSteps + lane * kItems;
    const float start = next_start;
    if (c > 0) next_start = r.valid ? states[c - 1] : 0.f;
    float u[kItems], dt[kItems], Bv[kItems], Cv[kItems], dy[kItems], decay[kItems], h[kItems], pre[kItems];
    if constexpr (kStaged) {
      staged.next_and_read(c, c > 0, [&] { stage_chunk(c - 1); }, u, pre, Bv, Cv, dy);  // chunks walk down
    } else {
      load_items(u, u_row, t0, L, vec);
      load_items(pre, dt_row, t0, L, vec);
      load_items(Bv, B_row, t0, L, vec);
      load_items(Cv, C_row, t0, L, vec);
      load_items(dy, dout_row, t0, L, vec);
    }
    // the chunk's states again (the forward's scan from its saved start state)
    float prod = 1.f, acc = 0.f;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      pre[i] += bias;
      dt[i] = a.softplus ? fast_softplus(pre[i]) : pre[i];
      const bool live = t0 + i < L;
      decay[i] = live ? exp2_ftz(dt[i] * A2) : 0.f;  // 0 past L: no adjoint flows back from there
      h[i] = live ? dt[i] * u[i] * Bv[i] : 0.f;  // the drive term for now
      acc = decay[i] * acc + h[i];
      prod *= decay[i];
    }
    segment_scan<W, true>(prod, acc, lane);
    const float p_up = shfl_up<W>(prod, 1), a_before = shfl_up<W>(acc, 1);
    const float h_first = lane ? p_up * start + a_before : start;  // state before the lane's first step
    {
      float hs = h_first;
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        hs = decay[i] * hs + h[i];
        h[i] = hs;
      }
    }
    // gate: y = C h + D u, out = y silu(z)
    if (z_row) {
      float zv[kItems], dz[kItems];
      load_items(zv, z_row, t0, L, vec);
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const float y = Cv[i] * h[i] + Dv * u[i];
        const float sig = fast_sigmoid(zv[i]);
        dz[i] = dy[i] * y * sig * (1.f + zv[i] * (1.f - sig));
        dy[i] = dy[i] * zv[i] * sig;
      }
      store_items(dz_row, dz, t0, L, vec);
    }
    // adjoint, in reverse: the lane's steps as one map g_in -> prod * g_in + acc, where g_in is the adjoint at
    // the next lane's first step and each step's factor is the decay of the step after it
    const float next_lane_decay = shfl_down<W>(decay[0], 1);
    const float after_lane = lane == W - 1 ? decay_carry : next_lane_decay;
    prod = 1.f;
    acc = 0.f;
#pragma unroll
    for (int i = kItems - 1; i >= 0; --i) {
      const float factor = i == kItems - 1 ? after_lane : decay[i + 1];
      acc = Cv[i] * dy[i] + factor * acc;
      prod *= factor;
    }
    segment_scan<W, false>(prod, acc, lane);
    const float g_lane = prod * g_carry + acc;  // adjoint at the lane's first step
    const float g_next_lane = shfl_down<W>(g_lane, 1);
    float g = lane == W - 1 ? g_carry : g_next_lane;  // adjoint at the next lane's first step
    decay_carry = shfl_at<W>(decay[0], 0);
    g_carry = shfl_at<W>(g_lane, 0);

    float du[kItems], ddelta[kItems];
#pragma unroll
    for (int i = kItems - 1; i >= 0; --i) {
      const float factor = i == kItems - 1 ? after_lane : decay[i + 1];
      g = Cv[i] * dy[i] + factor * g;
      const float h_prev = i ? h[i - 1] : h_first;
      const float ge = g * h_prev * decay[i];
      const float ddt = ge * A + g * Bv[i] * u[i];
      du[i] = g * Bv[i] * dt[i] + Dv * dy[i];
      dA_acc += ge * dt[i];
      dD_acc += dy[i] * u[i];
      // d softplus / dx = sigmoid(x) = exp(x - softplus(x)): one exp, exactly 1 above 20 (dt == x there)
      const float dd = a.softplus ? ddt * fast_exp(pre[i] - dt[i]) : ddt;
      ddelta[i] = dd;
      dbias_acc += dd;
      // reuse the registers: B now holds the dB term, C the dC term
      Bv[i] = g * dt[i] * u[i];
      Cv[i] = dy[i] * h[i];
    }
    store_items(du_row, du, t0, L, vec);  // nothing is stored for a row past the end (L = 0)
    store_items(ddelta_row, ddelta, t0, L, vec);
    if (block_sums) {
      // every row of the block is valid and in the same (batch, group): sum the kRows rows per step
      float (*const terms_B)[kSteps] = terms + (c % kSumBuffers) * 2 * kRows;
      float (*const terms_C)[kSteps] = terms_B + kRows;
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        terms_B[row_in_block][lane * kItems + i] = Bv[i];
        terms_C[row_in_block][lane * kItems + i] = Cv[i];
      }
      __syncthreads();
      for (int s = threadIdx.x; s < 2 * kSteps; s += kRowWarps * kWarp) {
        const int step = s % kSteps;
        const int t = c * kSteps + step;
        if (t < a.length) {
          float (*const rows)[kSteps] = s < kSteps ? terms_B : terms_C;
          float sum = 0.f;
#pragma unroll 8
          for (int w = 0; w < kRows; ++w) sum += rows[w][step];
          // this block's partial row: (2, blocks, L), summed per group on the host
          a.dBC_part[(static_cast<int64_t>(s < kSteps ? 0 : gridDim.x) + blockIdx.x) * a.length + t] = sum;
        }
      }
      // one buffer: wait until every sum is read before the next chunk writes; two: the next chunk writes the
      // other buffer, and the barrier after it orders these reads before the one after (two chunks on) again
      if constexpr (kSumBuffers == 1) __syncthreads();
    } else {
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        if (t0 + i < L) {
          atomicAdd(a.dB + bc + t0 + i, Bv[i]);
          atomicAdd(a.dC + bc + t0 + i, Cv[i]);
        }
      }
    }
  }
  dA_acc = segment_total<W>(dA_acc);
  dD_acc = segment_total<W>(dD_acc);
  dbias_acc = segment_total<W>(dbias_acc);
  if (r.valid && lane == 0) {
    a.dA_part[r.row] = dA_acc;
    if (a.D) a.dD_part[r.row] = dD_acc;
    if (a.bias) a.dbias_part[r.row] = dbias_acc;
  }
}

// past 48 KB of dynamic shared memory a kernel must opt in; a kernel with shared memory also asks for a carve-out
// with room for its MIN_BLOCKS blocks per SM (a hint: the driver may otherwise pick a smaller shared-memory share
// and keep fewer blocks resident)
template <typename Kernel>
void configure_shared_memory(Kernel kernel, int bytes, int min_blocks) {
  if (bytes == 0) return;
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  // the attributes stay set: once per (kernel, device), not on every launch
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> configured;
  const std::pair<const void*, int> key{reinterpret_cast<const void*>(kernel), device};
  const std::lock_guard<std::mutex> lock(mutex);
  if (configured.count(key)) return;
  if (bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  }
  int per_sm = 0;  // the carve-out is a percentage of the SM's shared memory (228 KB on sm_90)
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
  const int64_t wanted = static_cast<int64_t>(min_blocks) * (bytes + 1024) * 100;  // + 1 KB reserved per block
  const int percent = static_cast<int>(std::min<int64_t>(100, (wanted + per_sm - 1) / per_sm));
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, percent));
  configured.insert(key);
}

template <typename T, int W, bool kStaged>
void launch_forward_kernel(const ScanArgs& args, cudaStream_t stream) {
  auto kernel = forward_single_kernel<T, W, kStaged>;
  constexpr int bytes = forward_smem_bytes<T, kStaged>();
  configure_shared_memory(kernel, bytes, kFwdMinBlocks);
  kernel<<<single_state_blocks(args), kRowWarps * kWarp, bytes, stream>>>(args);
}

// the staged forward for 16-bit inputs only: in run 25c it took 0.55 / 0.63 / 1.00x the time of the plain-load
// forward at bf16, VMamba-T stages 1-3, but 2.94-3.37x at fp32 (64 KB of staging per block); fp32's plain-load
// forward already runs near the HBM bound (ncu, run 25a: 81% of DRAM peak at stage 1)
template <typename T, int W>
void launch_forward_rows(const ScanArgs& args, cudaStream_t stream) {
  if constexpr (kFwdStaged && sizeof(T) == 2) {
    if (forward_vectors<T>(args)) {
      launch_forward_kernel<T, W, true>(args, stream);
      return;
    }
  }
  launch_forward_kernel<T, W, false>(args, stream);
}

template <typename T>
void launch_forward_single(const ScanArgs& args, cudaStream_t stream) {
  if (single_state_lanes(args.length) == kWarp) {
    launch_forward_rows<T, kWarp>(args, stream);
  } else {
    launch_forward_rows<T, kShortLanes>(args, stream);
  }
}

template <typename T, int W, bool kStaged>
void launch_backward_kernel(const ScanArgs& args, cudaStream_t stream) {
  auto kernel = backward_single_kernel<T, W, kStaged>;
  constexpr int bytes = backward_smem_bytes<T, W, kStaged>();
  configure_shared_memory(kernel, bytes, kBwdMinBlocks);
  kernel<<<single_state_blocks(args), kRowWarps * kWarp, bytes, stream>>>(args);
}

template <typename T, int W>
void launch_backward_rows(const ScanArgs& args, cudaStream_t stream) {
  if (kBwdStaged && backward_vectors<T>(args)) {
    launch_backward_kernel<T, W, kBwdStaged>(args, stream);
  } else {
    launch_backward_kernel<T, W, false>(args, stream);
  }
}

template <typename T>
void launch_backward_single(const ScanArgs& args, cudaStream_t stream) {
  if (single_state_lanes(args.length) == kWarp) {
    launch_backward_rows<T, kWarp>(args, stream);
  } else {
    launch_backward_rows<T, kShortLanes>(args, stream);
  }
}

#define VMZ_INSTANTIATE_SINGLE(T)                                            \
  template void launch_forward_single<T>(const ScanArgs&, cudaStream_t);  \
  template void launch_backward_single<T>(const ScanArgs&, cudaStream_t);
VMZ_INSTANTIATE_SINGLE(float)
VMZ_INSTANTIATE_SINGLE(c10::Half)
VMZ_INSTANTIATE_SINGLE(c10::BFloat16)

}  // namespace vmz
