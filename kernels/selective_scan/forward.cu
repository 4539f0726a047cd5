// Forward selective scan kernel (see common.cuh for the layout of the work).
#include "common.cuh"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace vmz {

template <typename T, int NS>
__global__ void __launch_bounds__(kWarp) forward_kernel(ScanArgs a) {
  __shared__ float tile_u[kWarp][kTilePitch];
  __shared__ float tile_dt[kWarp][kTilePitch];
  __shared__ float tile_z[kWarp][kTilePitch];
  const RowOfLane r = row_of_lane(a);
  const int lane = r.lane, rows_total = r.rows_total, b = r.b, d = r.d, g = r.g;
  const int64_t row0 = r.row0, row = r.row;
  const bool valid = r.valid;
  const int N = a.d_state, L = a.length;

  float A[NS], h[NS];
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    A[n] = (valid && n < N) ? a.A[d * N + n] : 0.f;
    h[n] = 0.f;
  }
  const float bias = (valid && a.bias) ? a.bias[d] : 0.f;
  const float Dv = (valid && a.D) ? a.D[d] : 0.f;
  const int64_t bc = (static_cast<int64_t>(b) * a.groups + g) * N * L;  // B/C offset of this row's group
  float* states = a.chunk_states + row * a.n_chunks * N;

  for (int c = 0; c < a.n_chunks; ++c) {
    const int t0 = c * kChunk;
    if (valid) {
#pragma unroll
      for (int n = 0; n < NS; ++n)
        if (n < N) states[c * N + n] = h[n];
    }
    load_tile<T>(tile_u, a.u, row0, rows_total, L, t0, lane);
    load_tile<T>(tile_dt, a.delta, row0, rows_total, L, t0, lane);
    if (a.z) load_tile<T>(tile_z, a.z, row0, rows_total, L, t0, lane);
    const int steps = min(kChunk, L - t0);
    if (valid) {
      for (int s = 0; s < steps; ++s) {
        const int t = t0 + s;
        const float u = tile_u[lane][s];
        float dt = tile_dt[lane][s] + bias;
        if (a.softplus) dt = softplus_of(dt);
        const float dtu = dt * u;
        float y = Dv * u;
#pragma unroll
        for (int n = 0; n < NS; ++n) {
          if (n < N) {
            h[n] = expf(dt * A[n]) * h[n] + dtu * load_f<T>(a.B, bc + n * L + t);
            y += h[n] * load_f<T>(a.C, bc + n * L + t);
          }
        }
        if (a.z) {
          const float zv = tile_z[lane][s];
          y *= zv / (1.f + expf(-zv));
        }
        tile_u[lane][s] = y;  // the lane's own row: u_t is not read again
      }
    }
    store_tile<T>(tile_u, a.out, row0, rows_total, L, t0, lane);
  }
  if (valid) {
#pragma unroll
    for (int n = 0; n < NS; ++n)
      if (n < N) a.last_state[row * N + n] = h[n];
  }
}

template <typename T, int NS>
void launch_forward(const ScanArgs& args, cudaStream_t stream) {
  forward_kernel<T, NS><<<scan_blocks(args), kWarp, 0, stream>>>(args);
}

VMZ_INSTANTIATE(launch_forward)

}  // namespace vmz
