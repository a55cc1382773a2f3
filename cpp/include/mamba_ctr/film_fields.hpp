// mamba-ctr compiled kernel: film fields of layered structures (docs/kernel.md).
//
// Pure C++17 API, no Python. The caller owns every array; the kernel reads the
// inputs and writes the outputs in place.
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
#include <string>
#include <vector>

namespace mamba_ctr {

// Raw, C-contiguous views of the kernel inputs (row-major shapes in comments).
struct FilmFieldsInput {
  std::int64_t n = 0;           // structures
  std::int64_t n_sites = 0;     // S
  std::int64_t n_entries = 0;   // E
  std::int64_t n_pairs = 0;     // P
  std::int64_t n_columns = 0;   // C
  std::int64_t n_patterns = 0;  // NP
  std::int64_t n_species = 0;   // NSP
  std::int64_t n_rods = 0;      // R
  std::int64_t n_l = 0;         // NL

  const double* z = nullptr;                         // (n, S)
  const double* weight = nullptr;                    // (n, E)
  const std::int64_t* entry_site = nullptr;          // (E,), non-decreasing, in [0, S)
  const std::int64_t* entry_pair = nullptr;          // (E,), in [0, P)
  const std::int64_t* pair_column = nullptr;         // (P,), in [0, C)
  const std::int64_t* pair_species = nullptr;        // (P,), in [0, NSP)
  const std::complex<double>* pattern_phase = nullptr;  // (NP, C)
  const std::int64_t* rod_pattern = nullptr;         // (R,), in [0, NP)
  const double* qz = nullptr;                        // (NL,)
  double uniform_step = 0.0;  // > 0: qz[l] = qz[0] + l * uniform_step (recurrence); 0: arbitrary
  const double* ff_re = nullptr;                     // (NSP, R, NL)
  const double* ff_im = nullptr;                     // (NSP, R, NL), or null: real form factors
  const std::complex<double>* substrate = nullptr;   // (R, NL)
  const double* rough = nullptr;                     // (n, NL), or null: no roughness factor
};

// Check sizes, index ranges and the ordering of entry_site. Returns an empty
// string when the input is valid, otherwise a message saying what was expected
// and what was given. film_fields() assumes a valid input.
std::string check_film_fields_input(const FilmFieldsInput& in);

// Fill film_field U (n, R, NL) and/or intensity I (n, R, NL); either may be null.
// threads: OpenMP threads, 0 = the runtime default. Real is float or double.
template <class Real>
void film_fields(const FilmFieldsInput& in, std::complex<Real>* film_field, Real* intensity,
                 int threads = 0);

extern template void film_fields<float>(const FilmFieldsInput&, std::complex<float>*, float*, int);
extern template void film_fields<double>(const FilmFieldsInput&, std::complex<double>*, double*,
                                         int);

// The same with a given ISA variant ("baseline", "avx2", "avx512") instead of the one
// chosen at run time (for tests). Throws std::invalid_argument if the name is unknown or
// the variant is not compiled in or not supported by this CPU.
template <class Real>
void film_fields_isa(const std::string& isa, const FilmFieldsInput& in,
                     std::complex<Real>* film_field, Real* intensity, int threads = 0);

extern template void film_fields_isa<float>(const std::string&, const FilmFieldsInput&,
                                            std::complex<float>*, float*, int);
extern template void film_fields_isa<double>(const std::string&, const FilmFieldsInput&,
                                             std::complex<double>*, double*, int);

// ISA variants. The kernel is compiled for several instruction sets (x86-64 with GCC /
// Clang: baseline, avx2 = x86-64-v3, avx512 = x86-64-v4; elsewhere baseline only) and
// the best one the CPU supports is chosen at the first call; the environment variable
// MAMBA_CTR_ISA=baseline|avx2|avx512 forces one. All variants give the same bits.
// The variant in use; throws std::invalid_argument if MAMBA_CTR_ISA names an unknown
// variant or one this build / CPU cannot run (so does film_fields).
std::string isa();
// The compiled variants this CPU supports, from baseline to the best.
std::vector<std::string> isa_variants();

// OpenMP's default thread count (1 without OpenMP).
int max_threads() noexcept;
// Whether the kernel was built with OpenMP.
bool have_openmp() noexcept;

}  // namespace mamba_ctr
