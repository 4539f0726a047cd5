// vmamba_zoo CPU kernels: the selective scan forward (inference) and the fused 2D scan forward.
//
// Built on first use by vmamba_zoo/ops/selective_scan/cpu.py with torch.utils.cpp_extension.load (-O3, the
// host's instruction set). Same maths and contract as vmamba_zoo/ops/selective_scan/naive.py:
//
//   dt_t = softplus(delta_t + delta_bias);  h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t
//   y_t  = <C_t, h_t> + D * u_t;            out_t = y_t * silu(z_t)
//
// Layout of the work. Selective scan ((batch, channels, L), time contiguous): everything but the recurrence is
// element-wise, so it runs vectorised along time over tiles of TILE steps held in L1 (dt, exp(dt A), dt u B;
// then <C, h> + D u and the silu(z) gate), and the recurrence itself interleaves the ROWS x N independent
// chains of a block, one fused multiply-add per step each. Fused 2D scan: the SIMD lanes run over LANES
// channels of one pixel (contiguous in a channels-last map), pixels are visited in each direction's order
// straight from the (B, D, H, W) map, and the K directions' outputs are added into one channels-last map, so no
// re-ordered copy of the map is ever written.
//
// exp / log1p are our own branch-free polynomial forms (Cephes-style range reduction, ~1-2 ulp in fp32) written
// as plain loops so the compiler vectorises them; libm calls would keep every lane scalar.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace {

constexpr int LANES = 16;  // fused 2D kernel: channels per SIMD block (one AVX-512 / two AVX2 registers)
constexpr int ROWS = 8;    // selective scan: channels whose recurrences interleave (independent FMA chains)
constexpr int TILE = 64;   // selective scan: time steps per tile (its buffers stay in L1 for N = 1)

inline float bits_to_float(int32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline int32_t float_to_bits(float f) {
  int32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// exp(x) for x in fp32: x = k ln2 + r, |r| <= ln2 / 2, exp(r) by a degree-7 polynomial, 2^k through the exponent
// bits. Inputs are clamped to [-87, 88] (exp(-87) ~ 1.6e-38 stands for every smaller value: it is multiplied by
// a state or added to 1 everywhere below, so the difference to the denormal or zero is far below fp32 rounding).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  float k = x * 1.44269504088896341f + shifter;
  k -= shifter;
  float r = x - k * 0.693359375f;      // ln2 split in two so that k * ln2 is exact to fp32
  r = r - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ki = static_cast<int32_t>(k);
  return p * bits_to_float((ki + 127) << 23);
}

// 2^x: x = k + r with |r| <= 1/2 (exact), 2^r = 1 + r P(r) (Cephes exp2f, ~1.4 ulp), 2^k via the exponent bits.
// The decay exp(dt A) is computed as exp2(dt (A log2 e)) with A log2 e formed once per channel: no range
// reduction multiply and no ln2 split per element.
inline float fast_exp2(float x) {
  x = x < -126.0f ? -126.0f : x;
  x = x > 127.0f ? 127.0f : x;
  const float shifter = 12582912.0f;
  float k = x + shifter;
  k -= shifter;
  const float r = x - k;
  float p = 1.535336188319500e-4f;
  p = p * r + 1.339887440266574e-3f;
  p = p * r + 9.618437357674640e-3f;
  p = p * r + 5.550332471162809e-2f;
  p = p * r + 2.402264791363012e-1f;
  p = p * r + 6.931472028550421e-1f;
  p = p * r + 1.0f;
  const int32_t ki = static_cast<int32_t>(k);
  return p * bits_to_float((ki + 127) << 23);
}

constexpr float LOG2E = 1.44269504088896341f;

// log(v) for v in [1, 2]: v = 2^e (1 + f) with e in {0, 1} and 1 + f in [sqrt(1/2), sqrt(2)], then the Cephes
// logf polynomial in f.
inline float log_1_to_2(float v) {
  const bool high = v > 1.41421356237f;
  const float f = high ? v * 0.5f - 1.0f : v - 1.0f;
  const float e = high ? 1.0f : 0.0f;
  const float f2 = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = p * f * f2;
  y += e * -2.12194440e-4f;
  y -= 0.5f * f2;
  return f + y + e * 0.693359375f;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)), w = exp(-|x|) in (0, 1]. log1p(w) = log(v) + (w - (v - 1)) with
// v = fl(1 + w): the second term restores the bits of w that the rounding of 1 + w dropped (first-order
// correction c / v with 1/v ~ 1 where it matters: c / v - c = -c w / v is below fp32 rounding for every w), and
// needs no division. Equals torch's softplus (threshold 20) to fp32 rounding.
inline float fast_softplus(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float w = fast_exp(-ax);
  const float v = 1.0f + w;
  const float log1p_w = log_1_to_2(v) + (w - (v - 1.0f));
  return (x > 0.0f ? x : 0.0f) + log1p_w;
}

inline float fast_silu(float x) { return x / (1.0f + fast_exp(-x)); }

// --------------------------------------------------------------------------------------------------------------
// selective scan, (batch, channels, L) layout
// --------------------------------------------------------------------------------------------------------------

struct ScanArgs {
  int64_t batch, channels, length, d_state, groups;
  const float *u, *delta, *A, *B, *C, *D, *z, *bias;
  int64_t u_sb, u_sc, d_sb, d_sc, z_sb, z_sc;  // batch / channel strides (time stride 1)
  int64_t B_sb, B_sg, B_sn, C_sb, C_sg, C_sn;  // B, C: batch / group / state strides (time stride 1)
  bool softplus;
  float *out;          // (batch, channels, L) contiguous, or nullptr when the states are wanted
  float *states;       // (batch, channels, N, L) contiguous, or nullptr
  float *last_state;   // (batch, channels, N) contiguous
};

// The recurrence of one tile: ``chains`` independent state sequences h_j (rows x states of the block), each
// h_j[t] = a_j[t] h_j[t-1] + b_j[t] with a_j, b_j at stride TILE; h_j[t] overwrites b_j[t]. Kept scalar on
// purpose: the steps of one chain are sequential, and interleaving the chains hides the FMA latency, which a
// gather/scatter vectorisation across chains would not beat.
__attribute__((optimize("no-tree-vectorize")))
void recurrence_tile(const float *a, float *b, float *h, int64_t chains, int T) {
  for (int t = 0; t < T; ++t) {
    for (int64_t j = 0; j < chains; ++j) {
      const float hj = a[j * TILE + t] * h[j] + b[j * TILE + t];
      h[j] = hj;
      b[j * TILE + t] = hj;
    }
  }
}

// One tile of one block (batch b, channels [c0, c0 + rows) of group g, steps [t0, t0 + T)). Pass 1, vectorised
// along time, forms dt, a = exp(dt A) and b = dt u B for every (row, state); pass 2 runs the recurrences;
// pass 3, vectorised along time, reads out y = <C, h> + D u, gated by silu(z). FIXED_T > 0 gives the compiler
// the trip count of full tiles (unmasked vector loops, ~20% faster); 0 serves the last, partial tile.
template <int FIXED_T>
void scan_tile(const ScanArgs &a, int64_t b, int64_t g, int64_t c0, int rows, int64_t t0, int T_dyn,
               float *a_buf, float *b_buf, float *h) {
  const int T = FIXED_T > 0 ? FIXED_T : T_dyn;
  const int64_t N = a.d_state, chains = rows * N;
  const float *Bp = a.B + b * a.B_sb + g * a.B_sg + t0;
  const float *Cp = a.C ? a.C + b * a.C_sb + g * a.C_sg + t0 : nullptr;
  alignas(64) float dt[TILE], du[TILE], y[TILE];
  for (int r = 0; r < rows; ++r) {
    const int64_t c = c0 + r;
    const float *ur = a.u + b * a.u_sb + c * a.u_sc + t0;
    const float *dr = a.delta + b * a.d_sb + c * a.d_sc + t0;
    const float bias = a.bias ? a.bias[c] : 0.0f;
    if (a.softplus) {
      for (int t = 0; t < T; ++t) dt[t] = fast_softplus(dr[t] + bias);
    } else {
      for (int t = 0; t < T; ++t) dt[t] = dr[t] + bias;
    }
    for (int t = 0; t < T; ++t) du[t] = dt[t] * ur[t];
    for (int64_t n = 0; n < N; ++n) {
      const float A2 = a.A[c * N + n] * LOG2E;
      const float *Bn = Bp + n * a.B_sn;
      float *an = a_buf + (r * N + n) * TILE, *bn = b_buf + (r * N + n) * TILE;
      for (int t = 0; t < T; ++t) {
        an[t] = fast_exp2(dt[t] * A2);
        bn[t] = du[t] * Bn[t];
      }
    }
  }
  recurrence_tile(a_buf, b_buf, h, chains, T);
  for (int r = 0; r < rows; ++r) {
    const int64_t c = c0 + r;
    if (a.states) {
      for (int64_t n = 0; n < N; ++n)
        std::memcpy(a.states + ((b * a.channels + c) * N + n) * a.length + t0, b_buf + (r * N + n) * TILE,
                    sizeof(float) * T);
      continue;
    }
    const float *ur = a.u + b * a.u_sb + c * a.u_sc + t0;
    const float Dc = a.D ? a.D[c] : 0.0f;
    for (int t = 0; t < T; ++t) y[t] = Dc * ur[t];
    for (int64_t n = 0; n < N; ++n) {
      const float *Cn = Cp + n * a.C_sn, *hn = b_buf + (r * N + n) * TILE;
      for (int t = 0; t < T; ++t) y[t] += hn[t] * Cn[t];
    }
    float *orow = a.out + (b * a.channels + c) * a.length + t0;
    if (a.z) {
      const float *zr = a.z + b * a.z_sb + c * a.z_sc + t0;
      for (int t = 0; t < T; ++t) orow[t] = y[t] * fast_silu(zr[t]);
    } else {
      for (int t = 0; t < T; ++t) orow[t] = y[t];
    }
  }
}

// One block: batch b, channels [c0, c0 + rows) of one group g (rows <= ROWS), tile after tile; the states of its
// rows x N chains carry from tile to tile in h.
void scan_block(const ScanArgs &a, int64_t b, int64_t g, int64_t c0, int rows, std::vector<float> &work) {
  const int64_t N = a.d_state, chains = rows * N;
  work.resize(static_cast<size_t>(chains) * (2 * TILE + 1));
  float *a_buf = work.data(), *b_buf = a_buf + chains * TILE, *h = b_buf + chains * TILE;
  std::fill(h, h + chains, 0.0f);
  for (int64_t t0 = 0; t0 < a.length; t0 += TILE) {
    const int T = static_cast<int>(std::min<int64_t>(TILE, a.length - t0));
    if (T == TILE) {
      scan_tile<TILE>(a, b, g, c0, rows, t0, T, a_buf, b_buf, h);
    } else {
      scan_tile<0>(a, b, g, c0, rows, t0, T, a_buf, b_buf, h);
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int64_t n = 0; n < N; ++n) a.last_state[(b * a.channels + c0 + r) * N + n] = h[r * N + n];
}

// Ask the kernel for transparent huge pages on a large output before its first touch. A fresh (batch, K*D, L)
// output of VMamba-T stage 1 at batch 8 is 77 MB: with 4 KiB pages its ~19k first-touch faults cost ~24 ms on the
// 2-core test machine, a third of the kernel's time; 2 MiB pages take 512x fewer. Only the 2 MiB-aligned interior
// is advised; a no-op where THP is off or not Linux.
void advise_huge_pages(const torch::Tensor &t) {
#ifdef __linux__
  constexpr uintptr_t huge = uintptr_t(1) << 21;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + t.numel() * t.element_size();
  const uintptr_t first = (begin + huge - 1) & ~(huge - 1), last = end & ~(huge - 1);
  if (last > first) madvise(reinterpret_cast<void *>(first), last - first, MADV_HUGEPAGE);
#endif
}

const float *data_or_null(const c10::optional<torch::Tensor> &t) {
  return t.has_value() && t->defined() ? t->data_ptr<float>() : nullptr;
}

void check_float_cpu(const torch::Tensor &t, const char *name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32, "vmamba_zoo cpu scan: ", name,
              " must be a float32 CPU tensor");
}

// u, delta, z: (batch, channels, L), time stride 1; A: (channels, N) contiguous; B, C: (batch, G, N, L), time
// stride 1; D, bias: (channels,) contiguous. Returns [out or states, last_state].
std::vector<torch::Tensor> selective_scan_fwd(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor B,
                                              c10::optional<torch::Tensor> C, c10::optional<torch::Tensor> D,
                                              c10::optional<torch::Tensor> z, c10::optional<torch::Tensor> bias,
                                              bool softplus, bool return_states) {
  check_float_cpu(u, "u");
  check_float_cpu(delta, "delta");
  check_float_cpu(A, "A");
  check_float_cpu(B, "B");
  TORCH_CHECK(u.stride(2) == 1 && delta.stride(2) == 1 && B.stride(3) == 1, "vmamba_zoo cpu scan: time stride 1");
  TORCH_CHECK(A.is_contiguous(), "vmamba_zoo cpu scan: A contiguous");
  ScanArgs a{};
  a.batch = u.size(0);
  a.channels = u.size(1);
  a.length = u.size(2);
  a.d_state = A.size(1);
  a.groups = B.size(1);
  a.u = u.data_ptr<float>();
  a.delta = delta.data_ptr<float>();
  a.A = A.data_ptr<float>();
  a.B = B.data_ptr<float>();
  a.C = data_or_null(C);
  a.D = data_or_null(D);
  a.z = data_or_null(z);
  a.bias = data_or_null(bias);
  a.u_sb = u.stride(0);
  a.u_sc = u.stride(1);
  a.d_sb = delta.stride(0);
  a.d_sc = delta.stride(1);
  a.B_sb = B.stride(0);
  a.B_sg = B.stride(1);
  a.B_sn = B.stride(2);
  if (a.C) {
    TORCH_CHECK(C->stride(3) == 1, "vmamba_zoo cpu scan: C time stride 1");
    a.C_sb = C->stride(0);
    a.C_sg = C->stride(1);
    a.C_sn = C->stride(2);
  }
  if (a.z) {
    TORCH_CHECK(z->stride(2) == 1, "vmamba_zoo cpu scan: z time stride 1");
    a.z_sb = z->stride(0);
    a.z_sc = z->stride(1);
  }
  a.softplus = softplus;
  torch::Tensor result = return_states ? torch::empty({a.batch, a.channels, a.d_state, a.length}, u.options())
                                       : torch::empty({a.batch, a.channels, a.length}, u.options());
  torch::Tensor last = torch::empty({a.batch, a.channels, a.d_state}, u.options());
  advise_huge_pages(result);
  a.out = return_states ? nullptr : result.data_ptr<float>();
  a.states = return_states ? result.data_ptr<float>() : nullptr;
  a.last_state = last.data_ptr<float>();

  const int64_t per_group = a.channels / a.groups;
  const int64_t blocks_per_group = (per_group + ROWS - 1) / ROWS;
  const int64_t blocks = a.batch * a.groups * blocks_per_group;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> work;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t blk = i % blocks_per_group, g = (i / blocks_per_group) % a.groups;
      const int64_t b = i / (blocks_per_group * a.groups);
      const int64_t c0 = g * per_group + blk * ROWS;
      scan_block(a, b, g, c0, static_cast<int>(std::min<int64_t>(ROWS, per_group - blk * ROWS)), work);
    }
  });
  return {result, last};
}

// dst[r] = src[r * stride] for r < lanes (dst's other lanes untouched); the unit stride (a channels-last map)
// gets its own loop so the compiler emits plain vector loads instead of a strided gather.
inline void load_lanes(float *dst, const float *src, int64_t stride, int lanes) {
  if (stride == 1 && lanes == LANES) {
    for (int r = 0; r < LANES; ++r) dst[r] = src[r];
  } else {
    for (int r = 0; r < lanes; ++r) dst[r] = src[r * stride];
  }
}

// --------------------------------------------------------------------------------------------------------------
// fused 2D scan: read the map in each direction's order, add the K outputs into one map
// --------------------------------------------------------------------------------------------------------------

// x: (B, D, H, W), any strides with H and W mergeable into one pixel index (stride_h == W * stride_w); delta:
// (B, K, D, HW) and Bs, Cs: (B, K, N, HW), any strides; A: (K*D, N) contiguous; D, bias: (K*D,); orders: (K, S)
// int64 pixel indices, HW = the padding sentinel (that step reads zeros: x = delta = B = C = 0, so the state
// only decays, as scan() feeding zeros does). Returns the merged output (B, HW, D) channels-last, float32.
torch::Tensor scan2d_fused_fwd(torch::Tensor x, torch::Tensor delta, torch::Tensor A, torch::Tensor Bs,
                               torch::Tensor Cs, torch::Tensor orders, c10::optional<torch::Tensor> D,
                               c10::optional<torch::Tensor> bias, bool softplus) {
  check_float_cpu(x, "x");
  check_float_cpu(delta, "delta");
  check_float_cpu(A, "A");
  check_float_cpu(Bs, "B");
  check_float_cpu(Cs, "C");
  TORCH_CHECK(orders.scalar_type() == torch::kInt64 && orders.is_contiguous() && orders.device().is_cpu(),
              "vmamba_zoo cpu scan2d: orders must be contiguous int64 on the CPU");
  TORCH_CHECK(A.is_contiguous(), "vmamba_zoo cpu scan2d: A contiguous");
  const int64_t batch = x.size(0), dim = x.size(1), H = x.size(2), W = x.size(3), HW = H * W;
  TORCH_CHECK(H == 1 || x.stride(2) == W * x.stride(3), "vmamba_zoo cpu scan2d: x's H and W must merge");
  const int64_t K = orders.size(0), S = orders.size(1), N = A.size(1);
  const int64_t x_sb = x.stride(0), x_sc = x.stride(1), x_sp = x.stride(3);
  const int64_t d_sb = delta.stride(0), d_sk = delta.stride(1), d_sc = delta.stride(2), d_sp = delta.stride(3);
  const int64_t B_sb = Bs.stride(0), B_sk = Bs.stride(1), B_sn = Bs.stride(2), B_sp = Bs.stride(3);
  const int64_t C_sb = Cs.stride(0), C_sk = Cs.stride(1), C_sn = Cs.stride(2), C_sp = Cs.stride(3);
  const float *xp = x.data_ptr<float>(), *dp = delta.data_ptr<float>(), *Ap = A.data_ptr<float>();
  const float *Bp = Bs.data_ptr<float>(), *Cp = Cs.data_ptr<float>();
  const float *Dp = data_or_null(D), *biasp = data_or_null(bias);
  const int64_t *op = orders.data_ptr<int64_t>();
  torch::Tensor out = torch::empty({batch, HW, dim}, x.options());
  advise_huge_pages(out);
  out.zero_();
  float *outp = out.data_ptr<float>();

  const int64_t blocks_per_batch = (dim + LANES - 1) / LANES;
  at::parallel_for(0, batch * blocks_per_batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> h_buf(N * LANES), A_buf(N * LANES);
    float *h = h_buf.data(), *Ab = A_buf.data();
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / blocks_per_batch, c0 = (i % blocks_per_batch) * LANES;
      const int lanes = static_cast<int>(std::min<int64_t>(LANES, dim - c0));
      for (int64_t k = 0; k < K; ++k) {
        float D_l[LANES] = {0}, bias_l[LANES] = {0}, dt_pad[LANES] = {0};
        std::fill(h, h + N * LANES, 0.0f);
        std::fill(Ab, Ab + N * LANES, 0.0f);
        for (int r = 0; r < lanes; ++r) {
          const int64_t ch = k * dim + c0 + r;
          for (int64_t n = 0; n < N; ++n) Ab[n * LANES + r] = Ap[ch * N + n] * LOG2E;  // exp2 below
          D_l[r] = Dp ? Dp[ch] : 0.0f;
          bias_l[r] = biasp ? biasp[ch] : 0.0f;
          dt_pad[r] = softplus ? fast_softplus(bias_l[r]) : bias_l[r];  // dt of a padded (zero) step
        }
        const int64_t *order = op + k * S;
        const float *xb = xp + b * x_sb + c0 * x_sc;
        const float *db = dp + b * d_sb + k * d_sk + c0 * d_sc;
        const float *Bb = Bp + b * B_sb + k * B_sk, *Cb = Cp + b * C_sb + k * C_sk;
        float *ob = outp + b * HW * dim + c0;
        for (int64_t s = 0; s < S; ++s) {
          const int64_t p = order[s];
          if (p >= HW) {  // padding step: the state decays, nothing is read or written
            for (int64_t n = 0; n < N; ++n)
              for (int r = 0; r < LANES; ++r) h[n * LANES + r] *= fast_exp2(dt_pad[r] * Ab[n * LANES + r]);
            continue;
          }
          float u[LANES] = {0}, dt[LANES] = {0}, du[LANES], y[LANES];
          load_lanes(u, xb + p * x_sp, x_sc, lanes);
          load_lanes(dt, db + p * d_sp, d_sc, lanes);
          if (softplus) {
            for (int r = 0; r < LANES; ++r) dt[r] = fast_softplus(dt[r] + bias_l[r]);
          } else {
            for (int r = 0; r < LANES; ++r) dt[r] += bias_l[r];
          }
          for (int r = 0; r < LANES; ++r) {
            du[r] = dt[r] * u[r];
            y[r] = D_l[r] * u[r];
          }
          for (int64_t n = 0; n < N; ++n) {
            const float Bn = Bb[n * B_sn + p * B_sp], Cn = Cb[n * C_sn + p * C_sp];
            float *hn = h + n * LANES;
            const float *An = Ab + n * LANES;
            for (int r = 0; r < LANES; ++r) {
              hn[r] = fast_exp2(dt[r] * An[r]) * hn[r] + du[r] * Bn;
              y[r] += hn[r] * Cn;
            }
          }
          float *o = ob + p * dim;
          for (int r = 0; r < lanes; ++r) o[r] += y[r];
        }
      }
    }
  });
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("selective_scan_fwd", &selective_scan_fwd, "selective scan forward (CPU, fp32)");
  m.def("scan2d_fused_fwd", &scan2d_fused_fwd, "fused 2D scan forward (CPU, fp32)");
}
