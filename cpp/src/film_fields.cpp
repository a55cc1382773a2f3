// mamba-ctr compiled kernel (docs/kernel.md): input checks, the structure-independent
// plan, and the run-time choice of the ISA variant of the computation
// (kernel_variant.cpp, compiled once per instruction set).
//
// This file is compiled with the baseline flags only, like everything that
// touches the standard library's containers; the variants see plain arrays.
#include "mamba_ctr/film_fields.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "kernel_variant.hpp"

#ifdef MAMBA_CTR_HAVE_OPENMP
#include <omp.h>
#endif
#if defined(MAMBA_CTR_HAVE_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
#define MAMBA_CTR_FORK_GUARD 1
#endif
#include <atomic>

namespace mamba_ctr {

namespace {

using detail::kBlock;
static_assert(detail::kGroup == kMomentGroup, "one group size for the moments");
using detail::PlanView;

// ---------------------------------------------------------------------------
// ISA variants, best last.
enum class Isa { baseline = 0, avx2 = 1, avx512 = 2 };
constexpr const char* kIsaNames[] = {"baseline", "avx2", "avx512"};

bool compiled(Isa isa) {
  switch (isa) {
    case Isa::baseline:
      return true;
    case Isa::avx2:
#ifdef MAMBA_CTR_VARIANT_AVX2
      return true;
#else
      return false;
#endif
    case Isa::avx512:
#ifdef MAMBA_CTR_VARIANT_AVX512
      return true;
#else
      return false;
#endif
  }
  return false;
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::baseline:
      return true;
#if defined(MAMBA_CTR_VARIANT_AVX2) || defined(MAMBA_CTR_VARIANT_AVX512)
    // x86-64-v3 (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE) / x86-64-v4 (+ AVX-512 F, BW, CD,
    // DQ, VL). libgcc / compiler-rt also check that the OS saves the vector state.
    case Isa::avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
             __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") &&
             __builtin_cpu_supports("movbe") && __builtin_cpu_supports("lzcnt");
    case Isa::avx512:
      return cpu_supports(Isa::avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    default:
      return false;
  }
}

bool usable(Isa isa) { return compiled(isa) && cpu_supports(isa); }

std::string variant_list() {
  std::string s;
  for (int k = 0; k < 3; ++k)
    if (usable(static_cast<Isa>(k))) s += std::string(s.empty() ? "" : ", ") + kIsaNames[k];
  return s;
}

// The variant named `name`, or std::invalid_argument if it is unknown, not compiled
// in or not supported by this CPU.
Isa isa_from_name(const std::string& name, const char* what) {
  for (int k = 0; k < 3; ++k) {
    if (name != kIsaNames[k]) continue;
    const Isa isa = static_cast<Isa>(k);
    if (!compiled(isa))
      throw std::invalid_argument(std::string(what) + ": the ISA variant '" + name +
                                  "' was not compiled into this build; available: " +
                                  variant_list());
    if (!cpu_supports(isa))
      throw std::invalid_argument(std::string(what) + ": this CPU does not support the ISA variant '" +
                                  name + "'; available: " + variant_list());
    return isa;
  }
  throw std::invalid_argument(std::string(what) + " must be one of baseline, avx2, avx512, got '" +
                              name + "'");
}

struct Choice {
  Isa isa = Isa::baseline;
  std::string error;  // non-empty: MAMBA_CTR_ISA names a variant that cannot be used
};

Choice choose() {
  Choice c;
  const char* env = std::getenv("MAMBA_CTR_ISA");
  if (env != nullptr && env[0] != '\0') {
    try {
      c.isa = isa_from_name(env, "MAMBA_CTR_ISA");
    } catch (const std::invalid_argument& e) {
      c.error = e.what();
    }
    return c;
  }
  for (int k = 2; k >= 0; --k)
    if (usable(static_cast<Isa>(k))) {
      c.isa = static_cast<Isa>(k);
      break;
    }
  return c;
}

// Chosen once, at the first call (thread-safe static initialisation).
const Choice& choice() {
  static const Choice c = choose();
  return c;
}

Isa active() {
  const Choice& c = choice();
  if (!c.error.empty()) throw std::invalid_argument(c.error);
  return c.isa;
}

int chunk_width(Isa isa) {
  switch (isa) {
#ifdef MAMBA_CTR_VARIANT_AVX512
    case Isa::avx512:
      return detail::avx512::chunk_width();
#endif
#ifdef MAMBA_CTR_VARIANT_AVX2
    case Isa::avx2:
      return detail::avx2::chunk_width();
#endif
    default:
      return detail::baseline::chunk_width();
  }
}

template <class Real>
void run_variant(Isa isa, const PlanView& pl, std::complex<Real>* U, Real* I, int threads) {
  switch (isa) {
#ifdef MAMBA_CTR_VARIANT_AVX512
    case Isa::avx512:
      detail::avx512::run(pl, U, I, threads);
      return;
#endif
#ifdef MAMBA_CTR_VARIANT_AVX2
    case Isa::avx2:
      detail::avx2::run(pl, U, I, threads);
      return;
#endif
    default:
      detail::baseline::run(pl, U, I, threads);
  }
}

// Counting sort by key: items with key k are members[offsets[k] .. offsets[k + 1]) (members optional).
static void group_by_key(const std::int64_t* key, std::int64_t n_items, std::int64_t n_keys,
                         std::vector<std::int64_t>& offsets, std::vector<std::int64_t>* members) {
  offsets.assign(n_keys + 1, 0);
  for (std::int64_t i = 0; i < n_items; ++i) ++offsets[key[i] + 1];
  for (std::int64_t k = 0; k < n_keys; ++k) offsets[k + 1] += offsets[k];
  if (members == nullptr) return;
  members->assign(n_items + 1, 0);
  std::vector<std::int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (std::int64_t i = 0; i < n_items; ++i) (*members)[fill[key[i]]++] = i;
}

// Check the tables; empty string when valid, else what was expected and what was given.
std::string check_tables(const PlanTables& in) {
  std::ostringstream msg;
  const std::int64_t sizes[] = {in.n_sites,    in.n_entries, in.n_pairs, in.n_columns,
                                in.n_patterns, in.n_species, in.n_rods,  in.n_l};
  for (std::int64_t s : sizes)
    if (s < 0) return "sizes must be >= 0, got a negative size";
  auto range = [&](const char* name, const std::int64_t* a, std::int64_t m, std::int64_t upper,
                   const char* sym) -> bool {
    for (std::int64_t k = 0; k < m; ++k)
      if (a[k] < 0 || a[k] >= upper) {
        msg << name << " values must lie in [0, " << sym << ") = [0, " << upper << "), got "
            << a[k] << " at index " << k;
        return false;
      }
    return true;
  };
  if (!range("entry_site", in.entry_site, in.n_entries, in.n_sites, "S")) return msg.str();
  if (!range("entry_pair", in.entry_pair, in.n_entries, in.n_pairs, "P")) return msg.str();
  if (!range("pair_column", in.pair_column, in.n_pairs, in.n_columns, "C")) return msg.str();
  if (!range("pair_species", in.pair_species, in.n_pairs, in.n_species, "NSP")) return msg.str();
  if (!range("rod_pattern", in.rod_pattern, in.n_rods, in.n_patterns, "NP")) return msg.str();
  for (std::int64_t e = 1; e < in.n_entries; ++e)
    if (in.entry_site[e] < in.entry_site[e - 1]) {
      msg << "entry_site must be non-decreasing, got entry_site[" << e - 1
          << "] = " << in.entry_site[e - 1] << " > entry_site[" << e << "] = " << in.entry_site[e];
      return msg.str();
    }
  for (std::int64_t l = 0; l < in.n_l; ++l)
    if (!std::isfinite(in.qz[l])) return "qz must be finite, got a non-finite value";
  if (!(std::isfinite(in.uniform_step) && in.uniform_step >= 0.0)) {
    msg << "uniform_step must be a finite number >= 0, got " << in.uniform_step;
    return msg.str();
  }
  return std::string();
}

}  // namespace

// Everything that does not depend on the structure (owning storage of a PlanView).
struct Plan::Impl {
  int isa_index = 0;  // an Isa (a plain int: Impl is not in the anonymous namespace)
  std::string isa_name;
  PlanView v{};
  std::vector<std::int64_t> entry_site, rod_pattern, site_off, pair_off, pair_entries, sp_off,
      sp_pairs, seg_off, seg_j, seg_len;
  std::vector<double> ph_re, ph_im, seg_q, sub_re, sub_im, ffc;
};

namespace {

// The segments of PlanView (kernel_variant.hpp): blocks of kBlock points cut at the starts of
// qz's evenly spaced runs of spacing `step` (step 0: every point its own run). The numba twin
// cuts the same way (_kernel_args.l_segments).
void make_segments(const double* qz, std::int64_t NL, double step, Plan::Impl& pl) {
  double qmax = 0.0;
  for (std::int64_t l = 0; l < NL; ++l) qmax = std::fmax(qmax, std::fabs(qz[l]));
  const double tol = 1e-13 * qmax;
  std::vector<char> starts(static_cast<std::size_t>(NL), 1);
  std::int64_t s = 0;
  for (std::int64_t l = 1; l < NL && step > 0.0; ++l) {
    const double line = qz[s] + static_cast<double>(l - s) * step;
    if (std::fabs(qz[l] - line) <= tol)
      starts[l] = 0;
    else
      s = l;
  }
  const std::int64_t NB = (NL + kBlock - 1) / kBlock;
  pl.seg_off.assign(NB + 1, 0);
  pl.seg_j.clear();
  pl.seg_len.clear();
  pl.seg_q.clear();
  for (std::int64_t b = 0; b < NB; ++b) {
    const std::int64_t l0 = b * kBlock, l1 = std::min(l0 + kBlock, NL);
    for (std::int64_t l = l0; l < l1; ++l) {
      if (l != l0 && !starts[l]) {
        ++pl.seg_len.back();
        continue;
      }
      pl.seg_j.push_back(l - l0);
      pl.seg_len.push_back(1);
      pl.seg_q.push_back(qz[l]);
    }
    pl.seg_off[b + 1] = static_cast<std::int64_t>(pl.seg_q.size());
  }
}

void make_plan(const PlanTables& in, int VW, Plan::Impl& pl) {
  PlanView& v = pl.v;
  v.n = 0;
  v.S = in.n_sites;
  v.E = in.n_entries;
  v.P = in.n_pairs;
  v.NP = in.n_patterns;
  v.NSP = in.n_species;
  v.R = in.n_rods;
  v.NL = in.n_l;
  v.NB = (v.NL + kBlock - 1) / kBlock;
  v.NLP = v.NB * kBlock;
  v.VW = VW;
  v.NCHA = v.NLP / VW;
  v.step = in.uniform_step;
  v.real_ff = in.ff_im == nullptr;
  pl.entry_site.assign(in.entry_site, in.entry_site + v.E);
  pl.rod_pattern.assign(in.rod_pattern, in.rod_pattern + v.R);

  group_by_key(in.entry_site, v.E, v.S, pl.site_off, nullptr);
  group_by_key(in.entry_pair, v.E, v.P, pl.pair_off, &pl.pair_entries);
  group_by_key(in.pair_species, v.P, v.NSP, pl.sp_off, &pl.sp_pairs);

  const std::int64_t C = in.n_columns;
  v.real_phase = true;
  for (std::int64_t k = 0; k < v.NP * C; ++k)
    if (in.pattern_phase[k].imag() != 0.0) v.real_phase = false;
  pl.ph_re.assign(v.NP * v.P + 1, 0.0);
  pl.ph_im.assign(v.NP * v.P + 1, 0.0);
  for (std::int64_t p = 0; p < v.NP; ++p)
    for (std::int64_t q = 0; q < v.P; ++q) {
      const std::complex<double> ph = in.pattern_phase[p * C + in.pair_column[q]];
      pl.ph_re[p * v.P + q] = ph.real();
      pl.ph_im[p * v.P + q] = ph.imag();
    }

  make_segments(in.qz, v.NL, in.uniform_step, pl);
  v.NSEG = static_cast<std::int64_t>(pl.seg_q.size());
  v.have_w = false;
  for (std::int64_t len : pl.seg_len) v.have_w |= len > 1;

  {
    const std::int64_t nc = v.real_ff ? 1 : 2;
    pl.ffc.assign(static_cast<std::size_t>(v.R * v.NCHA * v.NSP * nc * VW), 0.0);
    for (std::int64_t r = 0; r < v.R; ++r)
      for (std::int64_t sp = 0; sp < v.NSP; ++sp)
        for (std::int64_t l = 0; l < v.NL; ++l) {
          const std::int64_t ch = l / VW, t = l % VW;
          const std::int64_t dst = (((r * v.NCHA + ch) * v.NSP + sp) * nc) * VW + t;
          pl.ffc[dst] = in.ff_re[(sp * v.R + r) * v.NL + l];
          if (nc == 2) pl.ffc[dst + VW] = in.ff_im[(sp * v.R + r) * v.NL + l];
        }
  }
  pl.sub_re.resize(v.R * v.NL);
  pl.sub_im.resize(v.R * v.NL);
  for (std::int64_t k = 0; k < v.R * v.NL; ++k) {
    pl.sub_re[k] = in.substrate[k].real();
    pl.sub_im[k] = in.substrate[k].imag();
  }

  v.entry_site = pl.entry_site.data();
  v.rod_pattern = pl.rod_pattern.data();
  v.site_off = pl.site_off.data();
  v.pair_off = pl.pair_off.data();
  v.pair_entries = pl.pair_entries.data();
  v.sp_off = pl.sp_off.data();
  v.sp_pairs = pl.sp_pairs.data();
  v.ph_re = pl.ph_re.data();
  v.ph_im = pl.ph_im.data();
  v.seg_off = pl.seg_off.data();
  v.seg_j = pl.seg_j.data();
  v.seg_len = pl.seg_len.data();
  v.seg_q = pl.seg_q.data();
  v.sub_re = pl.sub_re.data();
  v.sub_im = pl.sub_im.data();
  v.ffc = pl.ffc.data();
}

// libgomp's thread pool does not survive fork(): a child of a process that has run a parallel region
// hangs in its first parallel region of more than one thread (e.g. a fork-started DataLoader worker).
// A child forked after the pool started therefore runs the kernel on one thread.
std::atomic<bool> g_pool_started{false};
std::atomic<bool> g_forked_after_pool{false};

#ifdef MAMBA_CTR_FORK_GUARD
void mark_child_after_fork() {
  if (g_pool_started.load()) g_forked_after_pool.store(true);
}
const int g_fork_guard = pthread_atfork(nullptr, nullptr, mark_child_after_fork);
#endif

int effective_threads(int requested) {
  if (g_forked_after_pool.load()) return 1;
#ifdef MAMBA_CTR_HAVE_OPENMP
  const int nt = requested > 0 ? requested : omp_get_max_threads();
#else
  const int nt = 1;
#endif
  if (nt > 1) g_pool_started.store(true);
  return nt;
}

}  // namespace

// ---------------------------------------------------------------------------
Plan::Plan(const PlanTables& tables, const std::string& isa) : impl_(new Impl) {
  // the ISA variant first: MAMBA_CTR_ISA or the name may be unusable (std::invalid_argument)
  const Isa kind = isa.empty() ? active() : isa_from_name(isa, "isa");
  impl_->isa_index = static_cast<int>(kind);
  impl_->isa_name = kIsaNames[impl_->isa_index];
  const std::string problem = check_tables(tables);
  if (!problem.empty()) throw std::invalid_argument(problem);
  make_plan(tables, chunk_width(kind), *impl_);
}

Plan::~Plan() = default;
Plan::Plan(Plan&&) noexcept = default;
Plan& Plan::operator=(Plan&&) noexcept = default;

std::int64_t Plan::n_sites() const noexcept { return impl_->v.S; }
std::int64_t Plan::n_entries() const noexcept { return impl_->v.E; }
std::int64_t Plan::n_rods() const noexcept { return impl_->v.R; }
std::int64_t Plan::n_l() const noexcept { return impl_->v.NL; }
const std::string& Plan::isa() const noexcept { return impl_->isa_name; }

template <class Real>
void Plan::run(std::int64_t n, const double* z, const double* weight, const double* rough,
               std::complex<Real>* film_field, Real* intensity, int threads,
               const std::uint8_t* bragg, double* moments) const {
  PlanView v = impl_->v;
  if (n <= 0 || v.R <= 0 || v.NL <= 0) return;
  if (film_field == nullptr && intensity == nullptr) return;
  if (moments != nullptr && (film_field == nullptr || intensity == nullptr || bragg == nullptr))
    throw std::invalid_argument("moments need both outputs (film_field and intensity) and bragg");
  v.n = n;
  v.z = z;
  v.weight = weight;
  v.rough = rough;
  v.bragg = bragg;
  v.moments = moments;
  run_variant<Real>(static_cast<Isa>(impl_->isa_index), v, film_field, intensity, effective_threads(threads));
}

template void Plan::run<float>(std::int64_t, const double*, const double*, const double*,
                               std::complex<float>*, float*, int, const std::uint8_t*, double*) const;
template void Plan::run<double>(std::int64_t, const double*, const double*, const double*,
                                std::complex<double>*, double*, int, const std::uint8_t*,
                                double*) const;

std::string isa() { return kIsaNames[static_cast<int>(active())]; }

std::vector<std::string> isa_variants() {
  std::vector<std::string> names;
  for (int k = 0; k < 3; ++k)
    if (usable(static_cast<Isa>(k))) names.emplace_back(kIsaNames[k]);
  return names;
}

int max_threads() noexcept {
#ifdef MAMBA_CTR_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

bool have_openmp() noexcept {
#ifdef MAMBA_CTR_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace mamba_ctr
