// mamba-ctr compiled kernel: the interface between the dispatcher (film_fields.cpp,
// baseline flags) and the ISA variants of the kernel (kernel_variant.cpp, compiled once
// per instruction set into its own namespace). Internal; not installed.
//
// The variant translation units are compiled with different -march flags. To keep
// code of one ISA from leaking into another through the linker's merging of inline /
// template functions (COMDAT), the variant code uses no standard-library templates
// that carry loops (no std::vector, std::unique_ptr, algorithms): everything the
// variants read is prepared here, in plain arrays, by the baseline code.
#pragma once

#include <complex>
#include <cstdint>

namespace mamba_ctr {
namespace detail {

constexpr int kBlock = 32;  // points per block: the recurrence is re-seeded every kBlock points
constexpr int kWStep = 8;
constexpr std::int64_t kGroup = 512;  // structures per group of the moments (= kMomentGroup)   // in-block multipliers: W[j] = W[j - kWStep] W[kWStep] beyond kWStep

// Everything that does not depend on the structure, as plain arrays (owned by the caller).
struct PlanView {
  std::int64_t n, S, E, P, NP, NSP, R, NL, NB, NLP, NCHA, VW;  // NLP = NB * kBlock, NCHA = NLP / VW
  std::int64_t NSEG;                 // segments of L (below)
  bool have_w, real_ff, real_phase;  // have_w: some segment is longer than one point (recurrence)
  double step;                       // qz spacing inside segments
  const std::int64_t* site_off;      // (S + 1): entries of site s are [site_off[s], site_off[s+1])
  const std::int64_t* pair_off;      // (P + 1): entries sorted by pair
  const std::int64_t* pair_entries;  // (E): entry indices, pair-major, stable
  const std::int64_t* sp_off;        // (NSP + 1): pairs sorted by species
  const std::int64_t* sp_pairs;      // (P)
  const double* ph_re;               // (NP, P): pattern phase of each pair's column
  const double* ph_im;               // (NP, P)
  // Segments: each block of kBlock points cut at the starts of qz's evenly spaced runs (points
  // l > s of a run starting at s satisfy qz[l] = qz[s] + (l - s) step to 1e-13 max|qz|); an
  // irregular point is a run of its own. Segment g: points [seg_j[g], seg_j[g] + seg_len[g]) of
  // its block, exp(i qz z) = exp(i seg_q[g] z) exp(i t step z) at its point t.
  const std::int64_t* seg_off;       // (NB + 1): segments of block b are [seg_off[b], seg_off[b+1])
  const std::int64_t* seg_j;         // (NSEG): first point, relative to the block
  const std::int64_t* seg_len;       // (NSEG): points
  const double* seg_q;               // (NSEG): qz at the first point
  const double* sub_re;              // (R, NL)
  const double* sub_im;              // (R, NL)
  const double* ffc;                 // (R, NCHA, NSP, re[/im], VW): form factors, zero-padded
  const double* z;                   // (n, S)
  const double* weight;              // (n, E)
  const std::int64_t* entry_site;    // (E)
  const std::int64_t* rod_pattern;   // (R)
  const double* rough;               // (n, NL) or null
  const std::uint8_t* bragg;         // (NL) or null: points where X = 0 (moments only)
  double* moments;                   // (ceil(n / kMomentGroup), 6, R, NL) or null (Plan::run)
};

#define MAMBA_CTR_DECLARE_VARIANT(ns)                                                      \
  namespace ns {                                                                           \
  int chunk_width() noexcept; /* VW: points per chunk (layout of PlanView::ffc) */          \
  void run(const PlanView& pl, std::complex<float>* U, float* I, int threads);            \
  void run(const PlanView& pl, std::complex<double>* U, double* I, int threads);          \
  }

MAMBA_CTR_DECLARE_VARIANT(baseline)
MAMBA_CTR_DECLARE_VARIANT(avx2)
MAMBA_CTR_DECLARE_VARIANT(avx512)

}  // namespace detail
}  // namespace mamba_ctr
