// Selective scan (Mamba S6) for the zoo's CUDA backend: shared definitions of the forward and backward kernels.
//
// Written for vmamba_zoo (kernels are built on demand by vmamba_zoo/ops/selective_scan/cuda.py with
// torch.utils.cpp_extension.load; nothing here is needed to install the package). The maths is the contract of
// vmamba_zoo/ops/selective_scan/naive.py (after state-spaces/mamba selective_scan_ref):
//   dt_t = softplus(delta_t + bias), h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = <C_t, h_t> + D u_t,
//   out_t = y_t * silu(z_t).
// Layout of the work (d_state > 1; d_state 1 has its own warp-per-row kernels, single_state.cu): one thread per
// (batch, channel) row walks the sequence; a warp is one block and owns 32
// consecutive rows. The row-major (batch, K*D, L) streams go through a per-warp shared-memory tile of 32 rows x
// kChunk steps, so every global load/store is a coalesced run along L; each lane then walks its own row of the
// tile. B and C (shared by the channels of a group) are read directly (lanes of one group hit the same address).
// The state at the start of every kChunk steps is saved for the backward, which recomputes one chunk at a time.
// Only warp-level intrinsics (__shfl_xor_sync, __all_sync, __syncwarp): no CUB, so CUDA 12 and 13 build it alike.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace vmz {

constexpr int kWarp = 32;
constexpr int kChunk = 32;       // steps per tile and per saved state
constexpr int kTilePitch = 33;   // +1 float per tile row: lanes reading one column hit 32 different banks
// d_state 1 (single_state.cu): W lanes per row (a warp, or kShortLanes for sequences <= kShortLength steps),
// kFwdItems (kBwdItems) consecutive steps per lane in the forward (backward), kRowWarps warps per block, and
// kFwdMinBlocks (kBwdMinBlocks) blocks per SM asked of __launch_bounds__ (which caps the registers); a state is
// saved every W * kBwdItems steps (the backward's chunk); kFwdStaged / kBwdStaged: inputs staged in shared
// memory with cp.async (the forward's for 16-bit inputs only), kSumBuffers: buffers of the per-block dB/dC terms.
// The VMZ_SINGLE_* macros exist so that tools/tune_cuda_single.py can build variants (-D...) and time them
// against each other; the defaults are the measured choice (model_cards/gpu_kernels.md, runs 24-25).
#ifndef VMZ_SINGLE_FWD_ITEMS
#define VMZ_SINGLE_FWD_ITEMS 8
#endif
#ifndef VMZ_SINGLE_BWD_ITEMS
#define VMZ_SINGLE_BWD_ITEMS 4
#endif
#ifndef VMZ_SINGLE_FWD_STAGED
#define VMZ_SINGLE_FWD_STAGED 1
#endif
#ifndef VMZ_SINGLE_BWD_STAGED
#define VMZ_SINGLE_BWD_STAGED 1
#endif
#ifndef VMZ_SINGLE_BWD_SUM_BUFFERS
#define VMZ_SINGLE_BWD_SUM_BUFFERS 2
#endif
#ifndef VMZ_SINGLE_ROW_WARPS
#define VMZ_SINGLE_ROW_WARPS 8
#endif
#ifndef VMZ_SINGLE_FWD_MIN_BLOCKS
#define VMZ_SINGLE_FWD_MIN_BLOCKS 3
#endif
#ifndef VMZ_SINGLE_BWD_MIN_BLOCKS
#define VMZ_SINGLE_BWD_MIN_BLOCKS 3
#endif
constexpr int kFwdItems = VMZ_SINGLE_FWD_ITEMS;
constexpr int kBwdItems = VMZ_SINGLE_BWD_ITEMS;
constexpr int kFwdMinBlocks = VMZ_SINGLE_FWD_MIN_BLOCKS;
constexpr int kBwdMinBlocks = VMZ_SINGLE_BWD_MIN_BLOCKS;
static_assert(kFwdItems == 2 || kFwdItems == 4 || kFwdItems == 8, "forward steps per lane: 2, 4 or 8");
static_assert(kBwdItems == 2 || kBwdItems == 4 || kBwdItems == 8, "backward steps per lane: 2, 4 or 8");
static_assert(VMZ_SINGLE_BWD_STAGED == 0 || VMZ_SINGLE_BWD_STAGED == 1, "staged backward: 0 or 1");
constexpr bool kBwdStaged = VMZ_SINGLE_BWD_STAGED == 1;
static_assert(VMZ_SINGLE_FWD_STAGED == 0 || VMZ_SINGLE_FWD_STAGED == 1, "staged forward: 0 or 1");
constexpr bool kFwdStaged = VMZ_SINGLE_FWD_STAGED == 1;
constexpr int kSumBuffers = VMZ_SINGLE_BWD_SUM_BUFFERS;
static_assert(kSumBuffers == 1 || kSumBuffers == 2, "buffers of the backward's per-block dB/dC sums: 1 or 2");
constexpr int kRowWarps = VMZ_SINGLE_ROW_WARPS;
static_assert(kRowWarps == 2 || kRowWarps == 4 || kRowWarps == 8, "warps per block: 2, 4 or 8");
constexpr int kShortLanes = 8;
constexpr int kShortLength = 128;

struct ScanArgs {
  // (batch, channels, L) row-major streams of the input dtype
  const void* u;
  const void* delta;
  const void* z;        // nullptr when absent
  const void* B;        // (batch, groups, N, L)
  const void* C;
  const float* A;       // (channels, N)
  const float* D;       // (channels,) or nullptr
  const float* bias;    // (channels,) or nullptr
  float* chunk_states;  // (batch * channels, n_chunks, N)
  // forward
  void* out;
  float* last_state;    // (batch * channels, N)
  // backward
  const void* dout;
  void* du;
  void* ddelta;
  void* dz;
  float* dA_part;       // (batch * channels, N): per-row partial sums, reduced over the batch on the host
  float* dD_part;       // (batch * channels,)
  float* dbias_part;    // (batch * channels,)
  float* dB;            // (batch, groups, N, L) fp32, summed over a group's channels with atomics
  float* dC;
  float* dBC_part;      // d_state 1 only, or nullptr: (2, blocks, L) per-block sums of dB / dC (no atomics)
  int batch, channels, length, d_state, groups, per_group, n_chunks;
  bool softplus;
};

#ifdef __CUDACC__  // device helpers: the .cu files only (binding.cpp is compiled by the host compiler)
__device__ __forceinline__ float softplus_of(float x) { return x > 20.f ? x : log1pf(expf(x)); }

template <typename T>
__device__ __forceinline__ float load_f(const void* p, int64_t i) {
  return static_cast<float>(static_cast<const T*>(p)[i]);
}

template <typename T>
__device__ __forceinline__ void store_f(void* p, int64_t i, float v) {
  static_cast<T*>(p)[i] = static_cast<T>(v);
}

// the (batch, channel) row this lane walks; lanes past the last row stay in the warp (shuffles, tiles) but
// touch no memory of their own
struct RowOfLane {
  int lane, rows_total, b, d, g;
  int64_t row0, row;
  bool valid;
};

__device__ __forceinline__ RowOfLane row_of_lane(const ScanArgs& a) {
  RowOfLane r;
  r.lane = threadIdx.x;
  r.rows_total = a.batch * a.channels;
  r.row0 = static_cast<int64_t>(blockIdx.x) * kWarp;
  r.row = r.row0 + r.lane;
  r.valid = r.row < r.rows_total;
  r.b = r.valid ? static_cast<int>(r.row / a.channels) : 0;
  r.d = r.valid ? static_cast<int>(r.row % a.channels) : 0;
  r.g = r.d / a.per_group;
  return r;
}

// tile[r][s] <- src[row0 + r, t0 + s] for the warp's 32 rows; lane s loads step t0 + s of each row
template <typename T>
__device__ __forceinline__ void load_tile(float (*tile)[kTilePitch], const void* src, int64_t row0, int rows_total,
                                          int length, int t0, int lane) {
  const int t = t0 + lane;
#pragma unroll 4
  for (int r = 0; r < kWarp; ++r) {
    const int64_t row = row0 + r;
    tile[r][lane] = (row < rows_total && t < length) ? load_f<T>(src, row * length + t) : 0.f;
  }
  __syncwarp();
}

template <typename T>
__device__ __forceinline__ void store_tile(float (*tile)[kTilePitch], void* dst, int64_t row0, int rows_total,
                                           int length, int t0, int lane) {
  __syncwarp();
  const int t = t0 + lane;
#pragma unroll 4
  for (int r = 0; r < kWarp; ++r) {
    const int64_t row = row0 + r;
    if (row < rows_total && t < length) store_f<T>(dst, row * length + t, tile[r][lane]);
  }
  __syncwarp();
}

#endif  // __CUDACC__

// one warp-sized block per 32 (batch, channel) rows
inline int scan_blocks(const ScanArgs& args) { return (args.batch * args.channels + kWarp - 1) / kWarp; }
// d_state 1: lanes per row, rows per block, blocks
inline int single_state_lanes(int length) { return length <= kShortLength ? kShortLanes : kWarp; }
inline int single_state_rows_per_block(int length) { return kRowWarps * kWarp / single_state_lanes(length); }
inline int single_state_blocks(const ScanArgs& args) {
  const int rows = single_state_rows_per_block(args.length);
  return (args.batch * args.channels + rows - 1) / rows;
}
// steps per saved state of the kernels that a padded state size and length run
inline int chunk_steps(int padded_state, int length) {
  return padded_state == 1 ? single_state_lanes(length) * kBwdItems : kChunk;
}

// the launchers binding.cpp calls: every input dtype x the padded state sizes > 1 (d_state 1: single_state.cu)
#define VMZ_INSTANTIATE_STATES(LAUNCH, T)                     \
  template void LAUNCH<T, 4>(const ScanArgs&, cudaStream_t);  \
  template void LAUNCH<T, 16>(const ScanArgs&, cudaStream_t); \
  template void LAUNCH<T, 64>(const ScanArgs&, cudaStream_t);
#define VMZ_INSTANTIATE(LAUNCH)                 \
  VMZ_INSTANTIATE_STATES(LAUNCH, float)         \
  VMZ_INSTANTIATE_STATES(LAUNCH, c10::Half)     \
  VMZ_INSTANTIATE_STATES(LAUNCH, c10::BFloat16)

template <typename T, int NS>
void launch_forward(const ScanArgs& args, cudaStream_t stream);

template <typename T, int NS>
void launch_backward(const ScanArgs& args, cudaStream_t stream);

template <typename T>
void launch_forward_single(const ScanArgs& args, cudaStream_t stream);

template <typename T>
void launch_backward_single(const ScanArgs& args, cudaStream_t stream);

}  // namespace vmz
