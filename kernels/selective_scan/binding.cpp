// Python bindings of the zoo's CUDA selective scan: forward and backward on prepared tensors.
// vmamba_zoo/ops/selective_scan/cuda.py does the preparation (contiguous row-major streams, grouped B/C, fp32
// A/D/bias) and the host-side reductions; absent optional tensors are passed as empty tensors.
#include <vector>

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include "common.cuh"

namespace {

using vmz::ScanArgs;

int padded_state(int64_t n) {
  if (n <= 1) return 1;
  if (n <= 4) return 4;
  if (n <= 16) return 16;
  if (n <= 64) return 64;
  TORCH_CHECK(false, "vmamba_zoo CUDA selective scan: d_state <= 64 supported, got ", n);
  return 0;
}

const void* opt_ptr(const at::Tensor& t) { return t.numel() ? t.data_ptr() : nullptr; }
const float* opt_fptr(const at::Tensor& t) { return t.numel() ? t.data_ptr<float>() : nullptr; }

void check_stream(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.device() == like.device(), name, " must be on u's device");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have u's dtype");
}

ScanArgs make_args(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                   const at::Tensor& C, const at::Tensor& D, const at::Tensor& z, const at::Tensor& bias,
                   bool softplus) {
  check_stream(u, "u", u);
  check_stream(delta, "delta", u);
  check_stream(B, "B", u);
  check_stream(C, "C", u);
  if (z.numel()) check_stream(z, "z", u);
  for (const at::Tensor* t : {&A, &D, &bias}) {
    TORCH_CHECK(!t->numel() || t->device() == u.device(), "A, D and delta_bias must be on u's device");
  }
  TORCH_CHECK(A.scalar_type() == at::kFloat && A.is_contiguous(), "A must be contiguous fp32");
  TORCH_CHECK(!D.numel() || (D.scalar_type() == at::kFloat && D.is_contiguous()), "D must be contiguous fp32");
  TORCH_CHECK(!bias.numel() || (bias.scalar_type() == at::kFloat && bias.is_contiguous()),
              "delta_bias must be contiguous fp32");
  ScanArgs a{};
  a.batch = static_cast<int>(u.size(0));
  a.channels = static_cast<int>(u.size(1));
  a.length = static_cast<int>(u.size(2));
  a.d_state = static_cast<int>(A.size(1));
  a.groups = static_cast<int>(B.size(1));
  a.per_group = a.channels / a.groups;
  const int chunk = vmz::chunk_steps(padded_state(a.d_state), a.length);
  a.n_chunks = static_cast<int>((a.length + chunk - 1) / chunk);
  a.softplus = softplus;
  a.u = u.data_ptr();
  a.delta = delta.data_ptr();
  a.z = opt_ptr(z);
  a.B = B.data_ptr();
  a.C = C.data_ptr();
  a.A = A.data_ptr<float>();
  a.D = opt_fptr(D);
  a.bias = opt_fptr(bias);
  return a;
}

template <typename T>
void launch_by_state(bool backward, const ScanArgs& a, int ns, cudaStream_t stream) {
  switch (ns) {
    case 1: backward ? vmz::launch_backward_single<T>(a, stream) : vmz::launch_forward_single<T>(a, stream); break;
    case 4: backward ? vmz::launch_backward<T, 4>(a, stream) : vmz::launch_forward<T, 4>(a, stream); break;
    case 16: backward ? vmz::launch_backward<T, 16>(a, stream) : vmz::launch_forward<T, 16>(a, stream); break;
    default: backward ? vmz::launch_backward<T, 64>(a, stream) : vmz::launch_forward<T, 64>(a, stream); break;
  }
}

void launch(bool backward, at::ScalarType dtype, const ScanArgs& a) {
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int ns = padded_state(a.d_state);
  switch (dtype) {
    case at::kFloat: launch_by_state<float>(backward, a, ns, stream); break;
    case at::kHalf: launch_by_state<c10::Half>(backward, a, ns, stream); break;
    case at::kBFloat16: launch_by_state<c10::BFloat16>(backward, a, ns, stream); break;
    default: TORCH_CHECK(false, "vmamba_zoo CUDA selective scan: fp32/fp16/bf16 inputs only, got ", dtype);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// returns out, chunk_states, last_state
std::vector<at::Tensor> forward(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                                at::Tensor D, at::Tensor z, at::Tensor bias, bool softplus) {
  TORCH_CHECK(u.is_cuda(), "u must be a CUDA tensor");  // before the guard, which would fail less clearly
  const c10::cuda::CUDAGuard guard(u.device());
  ScanArgs a = make_args(u, delta, A, B, C, D, z, bias, softplus);
  auto f32 = u.options().dtype(at::kFloat);
  at::Tensor out = at::empty_like(u);
  at::Tensor chunk_states = at::empty({a.batch, a.channels, a.n_chunks, a.d_state}, f32);
  at::Tensor last_state = at::empty({a.batch, a.channels, a.d_state}, f32);
  a.out = out.data_ptr();
  a.chunk_states = chunk_states.data_ptr<float>();
  a.last_state = last_state.data_ptr<float>();
  if (a.batch * a.channels > 0 && a.length > 0) {
    launch(false, u.scalar_type(), a);
  } else {
    last_state.zero_();
  }
  return {out, chunk_states, last_state};
}

// returns du, ddelta, dA_part (batch, channels, N), dB, dC (fp32, (batch, groups, N, L)), dD_part, dz, dbias_part
std::vector<at::Tensor> backward(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                                 at::Tensor D, at::Tensor z, at::Tensor bias, bool softplus,
                                 at::Tensor chunk_states, at::Tensor dout) {
  TORCH_CHECK(u.is_cuda(), "u must be a CUDA tensor");  // before the guard, which would fail less clearly
  const c10::cuda::CUDAGuard guard(u.device());
  ScanArgs a = make_args(u, delta, A, B, C, D, z, bias, softplus);
  check_stream(dout, "dout", u);
  TORCH_CHECK(chunk_states.scalar_type() == at::kFloat && chunk_states.is_contiguous() &&
                  chunk_states.numel() == static_cast<int64_t>(a.batch) * a.channels * a.n_chunks * a.d_state,
              "chunk_states must be the forward's");
  auto f32 = u.options().dtype(at::kFloat);
  at::Tensor du = at::empty_like(u), ddelta = at::empty_like(delta);
  at::Tensor dz = z.numel() ? at::empty_like(z) : at::empty({0}, u.options());
  at::Tensor dA_part = at::zeros({a.batch, a.channels, a.d_state}, f32);
  // d_state 1 with whole blocks of one group: per-block partial sums, added here (no atomics, no zero fill)
  const int rows_per_block = vmz::single_state_rows_per_block(a.length);
  const bool block_sums = padded_state(a.d_state) == 1 && a.per_group % rows_per_block == 0;
  at::Tensor dBC_part;
  at::Tensor dB, dC;
  if (block_sums) {
    dBC_part = at::empty({2, vmz::single_state_blocks(a), a.length}, f32);
  } else {
    dB = at::zeros(B.sizes(), f32);
    dC = at::zeros(C.sizes(), f32);
  }
  at::Tensor dD_part = at::zeros({D.numel() ? a.batch : 0, a.channels}, f32);
  at::Tensor dbias_part = at::zeros({bias.numel() ? a.batch : 0, a.channels}, f32);
  a.chunk_states = chunk_states.data_ptr<float>();
  a.dout = dout.data_ptr();
  a.du = du.data_ptr();
  a.ddelta = ddelta.data_ptr();
  a.dz = z.numel() ? dz.data_ptr() : nullptr;
  a.dA_part = dA_part.data_ptr<float>();
  a.dD_part = D.numel() ? dD_part.data_ptr<float>() : nullptr;
  a.dbias_part = bias.numel() ? dbias_part.data_ptr<float>() : nullptr;
  a.dB = block_sums ? nullptr : dB.data_ptr<float>();
  a.dC = block_sums ? nullptr : dC.data_ptr<float>();
  a.dBC_part = block_sums ? dBC_part.data_ptr<float>() : nullptr;
  if (a.batch * a.channels > 0 && a.length > 0) {
    launch(true, u.scalar_type(), a);
  }
  if (block_sums) {
    // (2, batch, groups, blocks per group, L) -> sum over a group's blocks -> (batch, groups, 1, L) each
    at::Tensor sums = dBC_part.view({2, a.batch, a.groups, a.per_group / rows_per_block, a.length})
                          .sum(3, /*keepdim=*/true);
    dB = sums[0].contiguous();
    dC = sums[1].contiguous();
  }
  return {du, ddelta, dA_part, dB, dC, dD_part, dz, dbias_part};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "selective scan forward (vmamba_zoo)");
  m.def("backward", &backward, "selective scan backward (vmamba_zoo)");
}
