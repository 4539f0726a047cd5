// Backward selective scan kernel (see common.cuh for the layout of the work).
//
// Chunks of kChunk steps are walked in reverse. Each chunk first recomputes its states forward from the state
// the forward saved at its start (kept per lane in a kChunk x NS local array), then walks its steps backwards
// with the adjoint g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}:
//   ddt_t = sum_n g_t (h_{t-1} exp(dt_t A) A + B_t u_t),  du_t = dt_t sum_n g_t B_t + D dy_t,
//   dA += g_t h_{t-1} exp(dt_t A) dt_t,  dB_t += g_t dt_t u_t,  dC_t += dy_t h_t,  dD += dy_t u_t.
// dB/dC sum over the channels of a group: a warp whose 32 rows share one (batch, group) reduces with shuffles and
// adds once; otherwise each lane adds its own term.
#include "common.cuh"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace vmz {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T, int NS>
__global__ void __launch_bounds__(kWarp) backward_kernel(ScanArgs a) {
  __shared__ float tile_u[kWarp][kTilePitch];     // u in, du out
  __shared__ float tile_dt[kWarp][kTilePitch];    // delta in, ddelta out
  __shared__ float tile_dout[kWarp][kTilePitch];
  __shared__ float tile_z[kWarp][kTilePitch];     // z in, dz out
  const RowOfLane r = row_of_lane(a);
  const int lane = r.lane, rows_total = r.rows_total, b = r.b, d = r.d, g = r.g;
  const int64_t row0 = r.row0, row = r.row;
  const bool valid = r.valid;
  const int N = a.d_state, L = a.length;
  // one (batch, group) for the whole warp: dB/dC reduce with shuffles
  const int key = valid ? b * a.groups + g : -1;
  const bool uniform = __all_sync(0xffffffffu, key == __shfl_sync(0xffffffffu, key, 0) && valid);

  float A[NS], g_adj[NS], a_next[NS], dA_acc[NS], h0[NS];
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    A[n] = (valid && n < N) ? a.A[d * N + n] : 0.f;
    g_adj[n] = 0.f;
    a_next[n] = 0.f;
    dA_acc[n] = 0.f;
  }
  float hist[kChunk][NS];  // states after each step of the chunk being processed
  const float bias = (valid && a.bias) ? a.bias[d] : 0.f;
  const float Dv = (valid && a.D) ? a.D[d] : 0.f;
  float dD_acc = 0.f, dbias_acc = 0.f;
  const int64_t bc = (static_cast<int64_t>(b) * a.groups + g) * N * L;
  const float* states = a.chunk_states + row * a.n_chunks * N;

  for (int c = a.n_chunks - 1; c >= 0; --c) {
    const int t0 = c * kChunk;
    const int steps = min(kChunk, L - t0);
    load_tile<T>(tile_u, a.u, row0, rows_total, L, t0, lane);
    load_tile<T>(tile_dt, a.delta, row0, rows_total, L, t0, lane);
    load_tile<T>(tile_dout, a.dout, row0, rows_total, L, t0, lane);
    if (a.z) load_tile<T>(tile_z, a.z, row0, rows_total, L, t0, lane);

    // recompute the chunk's states
#pragma unroll
    for (int n = 0; n < NS; ++n) h0[n] = (valid && n < N) ? states[c * N + n] : 0.f;
    if (valid) {
      float h[NS];
#pragma unroll
      for (int n = 0; n < NS; ++n) h[n] = h0[n];
      for (int s = 0; s < steps; ++s) {
        const int t = t0 + s;
        float dt = tile_dt[lane][s] + bias;
        if (a.softplus) dt = softplus_of(dt);
        const float dtu = dt * tile_u[lane][s];
#pragma unroll
        for (int n = 0; n < NS; ++n) {
          if (n < N) h[n] = expf(dt * A[n]) * h[n] + dtu * load_f<T>(a.B, bc + n * L + t);
          hist[s][n] = h[n];
        }
      }
    }

    // walk the chunk backwards
    for (int s = steps - 1; s >= 0; --s) {
      const int t = t0 + s;
      float dB_term[NS], dC_term[NS];
#pragma unroll
      for (int n = 0; n < NS; ++n) dB_term[n] = dC_term[n] = 0.f;
      if (valid) {
        const float u = tile_u[lane][s];
        const float pre = tile_dt[lane][s] + bias;
        const float dt = a.softplus ? softplus_of(pre) : pre;
        const float dout = tile_dout[lane][s];
        float dy = dout;
        if (a.z) {
          float y = Dv * u;
#pragma unroll
          for (int n = 0; n < NS; ++n)
            if (n < N) y += hist[s][n] * load_f<T>(a.C, bc + n * L + t);
          const float zv = tile_z[lane][s];
          const float sig = 1.f / (1.f + expf(-zv));
          tile_z[lane][s] = dout * y * sig * (1.f + zv * (1.f - sig));
          dy = dout * zv * sig;
        }
        float ddt = 0.f, du_acc = 0.f;
#pragma unroll
        for (int n = 0; n < NS; ++n) {
          if (n < N) {
            const float Bn = load_f<T>(a.B, bc + n * L + t);
            const float Cn = load_f<T>(a.C, bc + n * L + t);
            const float decay = expf(dt * A[n]);
            const float hprev = s > 0 ? hist[s - 1][n] : h0[n];
            const float gn = Cn * dy + a_next[n] * g_adj[n];
            g_adj[n] = gn;
            a_next[n] = decay;
            const float ge = gn * hprev * decay;
            ddt += ge * A[n] + gn * Bn * u;
            du_acc += gn * Bn;
            dA_acc[n] += ge * dt;
            dB_term[n] = gn * dt * u;
            dC_term[n] = dy * hist[s][n];
          }
        }
        dD_acc += dy * u;
        const float ddelta = a.softplus ? (pre > 20.f ? ddt : ddt / (1.f + expf(-pre))) : ddt;
        dbias_acc += ddelta;
        tile_u[lane][s] = du_acc * dt + Dv * dy;  // du
        tile_dt[lane][s] = ddelta;
      }
      // dB, dC over the channels of the group (every lane takes part in the shuffles)
#pragma unroll
      for (int n = 0; n < NS; ++n) {
        if (n < N) {
          const int64_t at = bc + n * L + t;
          if (uniform) {
            const float sb = warp_sum(dB_term[n]);
            const float sc = warp_sum(dC_term[n]);
            if (lane == 0) {
              atomicAdd(a.dB + at, sb);
              atomicAdd(a.dC + at, sc);
            }
          } else if (valid) {
            atomicAdd(a.dB + at, dB_term[n]);
            atomicAdd(a.dC + at, dC_term[n]);
          }
        }
      }
    }
    store_tile<T>(tile_u, a.du, row0, rows_total, L, t0, lane);
    store_tile<T>(tile_dt, a.ddelta, row0, rows_total, L, t0, lane);
    if (a.z) store_tile<T>(tile_z, a.dz, row0, rows_total, L, t0, lane);
  }
  if (valid) {
#pragma unroll
    for (int n = 0; n < NS; ++n)
      if (n < N) a.dA_part[row * N + n] = dA_acc[n];
    if (a.D) a.dD_part[row] = dD_acc;
    if (a.bias) a.dbias_part[row] = dbias_acc;
  }
}

template <typename T, int NS>
void launch_backward(const ScanArgs& args, cudaStream_t stream) {
  backward_kernel<T, NS><<<scan_blocks(args), kWarp, 0, stream>>>(args);
}

VMZ_INSTANTIATE(launch_backward)

}  // namespace vmz
