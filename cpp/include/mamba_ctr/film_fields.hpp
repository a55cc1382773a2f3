// mamba-ctr compiled kernel: film fields of layered structures (docs/kernel.md).
//
// Pure C++17 API, no Python. A Plan holds the structure-independent tables; each
// run() reads the caller's per-structure arrays and writes the outputs in place.
//
// Per structure i (all sums in double precision):
//   G[pair, l]    = sum_e weight[i, e] exp(i qz[l] z[i, entry_site[e]])   (pair = entry_pair[e])
//   H[p, sp, l]   = sum_{pairs with pair_species = sp} pattern_phase[p, pair_column] G[pair, l]
//   U[r, l]       = sum_sp (ff_re + i ff_im)[sp, r, l] H[rod_pattern[r], sp, l]
//   I[r, l]       = |substrate[r, l] + U[r, l]|^2 rough[i, l]     (rough omitted when null)
//
// Work is split over structures; each structure is computed by one thread with
// the same code path, so the output bits do not depend on the thread count, nor on
// the ISA variant (see isa()).
#pragma once

#include <complex>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mamba_ctr {

// Raw, C-contiguous views of the structure-independent kernel inputs (row-major shapes
// in comments), read only while a Plan is built.
struct PlanTables {
  std::int64_t n_sites = 0;     // S
  std::int64_t n_entries = 0;   // E
  std::int64_t n_pairs = 0;     // P
  std::int64_t n_columns = 0;   // C
  std::int64_t n_patterns = 0;  // NP
  std::int64_t n_species = 0;   // NSP
  std::int64_t n_rods = 0;      // R
  std::int64_t n_l = 0;         // NL

  const std::int64_t* entry_site = nullptr;          // (E,), non-decreasing, in [0, S)
  const std::int64_t* entry_pair = nullptr;          // (E,), in [0, P)
  const std::int64_t* pair_column = nullptr;         // (P,), in [0, C)
  const std::int64_t* pair_species = nullptr;        // (P,), in [0, NSP)
  const std::complex<double>* pattern_phase = nullptr;  // (NP, C)
  const std::int64_t* rod_pattern = nullptr;         // (R,), in [0, NP)
  const double* qz = nullptr;                        // (NL,), finite
  double uniform_step = 0.0;  // > 0: spacing of qz's evenly spaced runs (recurrence there); 0: none
  const double* ff_re = nullptr;                     // (NSP, R, NL)
  const double* ff_im = nullptr;                     // (NSP, R, NL), or null: real form factors
  const std::complex<double>* substrate = nullptr;   // (R, NL)
};

// The kernel's plan: everything that does not depend on the structure (grouped index
// tables, phases, form factors in the layout of one ISA variant), built and checked once
// per (model, grid). run() takes only the per-structure arrays; it may be called from
// several threads at once (each call has its own scratch).
class Plan {
 public:
  // Checks sizes, index ranges, the ordering of entry_site, qz and uniform_step, and
  // copies what it needs (the tables may be freed afterwards). isa: "" for the variant
  // chosen at run time (isa()), or one of isa_variants(). Throws std::invalid_argument
  // with what was expected and what was given.
  explicit Plan(const PlanTables& tables, const std::string& isa = std::string());
  ~Plan();
  Plan(Plan&&) noexcept;
  Plan& operator=(Plan&&) noexcept;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  std::int64_t n_sites() const noexcept;    // S
  std::int64_t n_entries() const noexcept;  // E
  std::int64_t n_rods() const noexcept;     // R
  std::int64_t n_l() const noexcept;        // NL
  const std::string& isa() const noexcept;  // the ISA variant this plan runs

  // Fill film_field U (n, R, NL) and/or intensity I (n, R, NL) (either may be null) of n
  // structures: z (n, S) finite site heights, weight (n, E), rough (n, NL) or null.
  // threads: OpenMP threads, 0 = the runtime default. Real is float or double.
  //
  // moments (optional; needs both outputs and bragg): the per-point moments of the dataset
  // statistics, accumulated while each structure's outputs are in cache. Structures are taken in
  // groups of kMomentGroup (group g: [g G, min(n, (g + 1) G))), each group by one thread in index
  // order (so the bits do not depend on the thread count): moments (NG, 6, R, NL), NG = ceil(n / G),
  // rows mean X, mean Re U, mean Im U, M2 X, M2 Re U, M2 Im U (Welford, float64) of the values as
  // stored (Real), X = ln I with the points of the (NL,) mask bragg (non-zero) set to 0.
  template <class Real>
  void run(std::int64_t n, const double* z, const double* weight, const double* rough,
           std::complex<Real>* film_field, Real* intensity, int threads = 0,
           const std::uint8_t* bragg = nullptr, double* moments = nullptr) const;

  struct Impl;  // opaque: the tables in the layout of the variant (film_fields.cpp)

 private:
  std::unique_ptr<Impl> impl_;
};

// Structures per group of Plan::run's moments.
constexpr std::int64_t kMomentGroup = 512;

extern template void Plan::run<float>(std::int64_t, const double*, const double*, const double*,
                                      std::complex<float>*, float*, int, const std::uint8_t*,
                                      double*) const;
extern template void Plan::run<double>(std::int64_t, const double*, const double*, const double*,
                                       std::complex<double>*, double*, int, const std::uint8_t*,
                                       double*) const;

// ISA variants. The kernel is compiled for several instruction sets (x86-64 with GCC /
// Clang: baseline, avx2 = x86-64-v3, avx512 = x86-64-v4; elsewhere baseline only) and
// the best one the CPU supports is chosen at the first call; the environment variable
// MAMBA_CTR_ISA=baseline|avx2|avx512 forces one. All variants give the same bits.
// The variant in use; throws std::invalid_argument if MAMBA_CTR_ISA names an unknown
// variant or one this build / CPU cannot run (so does Plan's constructor).
std::string isa();
// The compiled variants this CPU supports, from baseline to the best.
std::vector<std::string> isa_variants();

// OpenMP's default thread count (1 without OpenMP).
int max_threads() noexcept;
// Whether the kernel was built with OpenMP.
bool have_openmp() noexcept;

}  // namespace mamba_ctr
