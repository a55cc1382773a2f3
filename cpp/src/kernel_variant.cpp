// mamba-ctr compiled kernel (docs/kernel.md): the computation, compiled once per
// instruction set (CMakeLists.txt) into the namespace mamba_ctr::detail::MAMBA_CTR_VARIANT
// (baseline, avx2, avx512); film_fields.cpp picks the variant at run time.
//
// Layout of the work for one structure (all arithmetic in double):
//   * active sites: sites with at least one entry of non-zero weight (padding
//     layers are skipped), entries grouped by pair;
//   * the L axis is cut into blocks of BL = 32 points, and each block into segments at the
//     starts of qz's evenly spaced runs (kernel_variant.hpp). The exponential exp(i qz z) of
//     every active site is seeded with an exact sincos at the first point of every segment and
//     continued inside it by multiplication with W[j] = exp(i j dq z) (W built from exp(i dq z)
//     by at most 11 multiplications, so the error stays at round-off). A uniform grid has one
//     segment per block; a grid with gaps a few more; an irregular point is a segment of one
//     point (its own sincos);
//   * per block: G (pairs, L1-resident) and H (patterns x species, stored
//     chunk-major for the whole L range: NP*NSP*NL complex per thread);
//   * then U and I rod by rod over the whole L range, reading a per-call copy of
//     the form factors laid out as one contiguous, zero-padded stream per rod.
// Everything is structure-of-arrays (separate re / im) and works on chunks of
// VW points (NPART native vectors, kept in registers), so it vectorises with
// plain SSE2 and better with AVX2 / AVX-512.
//
// Reproducibility: a structure is computed by one thread with one code path,
// there are no cross-thread reductions, and the sums over entries, pairs and
// species are done in a fixed order, so the bits do not depend on the number
// of threads. Vectorisation is across L only and every variant is compiled with
// -ffp-contract=off (no fused multiply-add), so every output value goes through
// the same sequence of IEEE operations in every variant: the bits do not depend
// on the ISA variant either.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernel_variant.hpp"

#ifdef MAMBA_CTR_HAVE_OPENMP
#include <omp.h>
#endif

#ifndef MAMBA_CTR_VARIANT
#error "MAMBA_CTR_VARIANT (baseline, avx2 or avx512) must be defined"
#endif

namespace mamba_ctr {
namespace detail {
namespace MAMBA_CTR_VARIANT {

namespace {

constexpr int BL = detail::kBlock;  // points per block: the recurrence is re-seeded every BL points
constexpr std::int64_t kGroup = detail::kGroup;  // structures per group of the moments

// ---------------------------------------------------------------------------
// A chunk of VW doubles, held as VW / NW native vectors of NW doubles (GCC / Clang
// vector extensions, sized for the target ISA so that chunks stay in registers),
// or as a plain array with other compilers.
#if (defined(__GNUC__) || defined(__clang__)) && !defined(MAMBA_CTR_NO_VECTOR_EXT)
#define MAMBA_CTR_VECTOR_EXT 1
#if defined(__AVX512F__)
constexpr int NW = 8;
#elif defined(__AVX__)
constexpr int NW = 4;
#else
constexpr int NW = 2;
#endif
typedef double vn __attribute__((vector_size(NW * sizeof(double))));
typedef std::uint64_t vnu __attribute__((vector_size(NW * sizeof(double))));
typedef double vn_unaligned __attribute__((vector_size(NW * sizeof(double)), aligned(sizeof(double))));
#define MAMBA_CTR_INLINE inline __attribute__((always_inline))
#else
#define MAMBA_CTR_INLINE inline
constexpr int NW = 1;
typedef double vn;
#endif
#ifndef MAMBA_CTR_CHUNK_PARTS
#define MAMBA_CTR_CHUNK_PARTS 2
#endif
constexpr int NPART = MAMBA_CTR_CHUNK_PARTS;  // native vectors per chunk
constexpr int VW = NPART * NW;                // points per chunk
constexpr int NCH = BL / VW;                  // chunks per block
static_assert(BL % VW == 0, "a block must hold whole chunks");

struct vd {
  vn p[NPART];
};

MAMBA_CTR_INLINE double lane(const vd& v, int t) {
#ifdef MAMBA_CTR_VECTOR_EXT
  return v.p[t / NW][t % NW];
#else
  return v.p[t];
#endif
}

MAMBA_CTR_INLINE vd vload(const double* ptr) {
  vd r;
#ifdef MAMBA_CTR_VECTOR_EXT
  for (int k = 0; k < NPART; ++k) r.p[k] = *reinterpret_cast<const vn_unaligned*>(ptr + k * NW);
#else
  std::memcpy(r.p, ptr, sizeof r.p);
#endif
  return r;
}
MAMBA_CTR_INLINE void vstore(double* ptr, const vd& v) {
#ifdef MAMBA_CTR_VECTOR_EXT
  for (int k = 0; k < NPART; ++k) *reinterpret_cast<vn_unaligned*>(ptr + k * NW) = v.p[k];
#else
  std::memcpy(ptr, v.p, sizeof v.p);
#endif
}
MAMBA_CTR_INLINE vd vzero() {
  vd r;
  for (int k = 0; k < NPART; ++k) r.p[k] = vn{};
  return r;
}
#define MAMBA_CTR_VD_OP(op)                                             \
  MAMBA_CTR_INLINE vd operator op(const vd& a, const vd& b) {                     \
    vd r;                                                               \
    for (int k = 0; k < NPART; ++k) r.p[k] = a.p[k] op b.p[k];          \
    return r;                                                           \
  }                                                                     \
  MAMBA_CTR_INLINE vd operator op(const vd& a, double b) {                        \
    vd r;                                                               \
    for (int k = 0; k < NPART; ++k) r.p[k] = a.p[k] op b;               \
    return r;                                                           \
  }                                                                     \
  MAMBA_CTR_INLINE vd operator op(double a, const vd& b) {                        \
    vd r;                                                               \
    for (int k = 0; k < NPART; ++k) r.p[k] = a op b.p[k];               \
    return r;                                                           \
  }
MAMBA_CTR_VD_OP(+)
MAMBA_CTR_VD_OP(-)
MAMBA_CTR_VD_OP(*)
#undef MAMBA_CTR_VD_OP

// Load the first `len` (<= VW) values; the rest of the chunk is zero.
MAMBA_CTR_INLINE vd vload_n(const double* ptr, int len) {
  if (len == VW) return vload(ptr);
  alignas(64) double tmp[VW] = {};
  std::memcpy(tmp, ptr, static_cast<std::size_t>(len) * sizeof(double));
  return vload(tmp);
}

// ---------------------------------------------------------------------------
// sin and cos of m values (m a multiple of VW; the buffers hold m values).
// Cody-Waite reduction by pi/2 in three 33-bit parts (exact for |x| <= 1e5)
// and the fdlibm minimax polynomials on [-pi/4, pi/4]: error about 1 ulp.
// Values with |x| > 1e5, inf or nan go through std::sin / std::cos.
constexpr double kSinCosBound = 1e5;

void sincos_block(const double* x, std::int64_t m, double* s, double* c) {
#ifdef MAMBA_CTR_VECTOR_EXT
  const double two_over_pi = 6.36619772367581382433e-01;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52: round to nearest integer
  const double p1 = 1.57079632673412561417e+00;
  const double p2 = 6.07710050630396597660e-11;
  const double p3 = 2.02226624871116645580e-21;
  const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
               S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
               S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
               C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
               C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  const vnu one = vnu{} + 1, two = vnu{} + 2;
  for (std::int64_t i = 0; i < m; i += NW) {
    vn xv;
    std::memcpy(&xv, x + i, sizeof xv);
    const vn y = xv * two_over_pi + magic;
    const vn kd = y - magic;
    const vnu q = (vnu)y;  // low bits: k mod 4
    const vn r = ((xv - kd * p1) - kd * p2) - kd * p3;
    const vn z = r * r;
    const vn sp = r + (z * r) * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))));
    const vn cq = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
    const vn hz = 0.5 * z;
    const vn w = 1.0 - hz;
    const vn cp = w + (((1.0 - w) - hz) + z * cq);
    const vnu swap = vnu{} - (q & one);            // all ones for odd quadrants
    const vnu sin_sign = (q & two) << 62;           // quadrants 2, 3
    const vnu cos_sign = ((q + one) & two) << 62;   // quadrants 1, 2
    const vn sv = (vn)((((vnu)cp & swap) | ((vnu)sp & ~swap)) ^ sin_sign);
    const vn cv = (vn)((((vnu)sp & swap) | ((vnu)cp & ~swap)) ^ cos_sign);
    std::memcpy(s + i, &sv, sizeof sv);
    std::memcpy(c + i, &cv, sizeof cv);
  }
  for (std::int64_t i = 0; i < m; ++i) {
    if (!(std::fabs(x[i]) <= kSinCosBound)) {
      s[i] = std::sin(x[i]);
      c[i] = std::cos(x[i]);
    }
  }
#else
  for (std::int64_t i = 0; i < m; ++i) {
    s[i] = std::sin(x[i]);
    c[i] = std::cos(x[i]);
  }
#endif
}

// ---------------------------------------------------------------------------
// Natural logarithm of m values (m a multiple of NW): the fdlibm / musl algorithm (reduction to
// [sqrt(2)/2, sqrt(2)) by the exponent bits, s = f / (2 + f), a degree-14 polynomial in s):
// error < 1 ulp. Zero, negative, subnormal, infinite and NaN values go through std::log. x and y
// must not overlap.
void log_block(const double* __restrict__ x, std::int64_t m, double* __restrict__ y) {
#ifdef MAMBA_CTR_VECTOR_EXT
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
               Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
               Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
               Lg7 = 1.479819860511658591e-01;
  const double kbias = 4503599627370496.0 + 1023.0;  // 2^52 + 1023: exponent bits -> double
  // lanes outside [DBL_MIN, DBL_MAX] (or NaN), found by vector compares: the scalar pass below only runs
  // when there are any (they are rare: a zero intensity, an infinite one at a Bragg point)
  typedef std::int64_t vns __attribute__((vector_size(NW * sizeof(double))));
  vns outside = vns{};
  for (std::int64_t i = 0; i < m; i += NW) {
    vn xv;
    std::memcpy(&xv, x + i, sizeof xv);
    outside |= ~((xv >= 2.2250738585072014e-308) & (xv <= 1.7976931348623157e308));
    const vnu bits = (vnu)xv;
    vnu hx = (bits >> 32) + (0x3ff00000u - 0x3fe6a09eu);
    const vnu kb = hx >> 20;  // k + 1023
    hx = (hx & 0x000fffffu) + 0x3fe6a09eu;
    const vn mant = (vn)((hx << 32) | (bits & 0xffffffffu));
    const vn dk = (vn)(kb | 0x4330000000000000u) - kbias;
    const vn f = mant - 1.0;
    const vn hfsq = 0.5 * f * f;
    const vn s = f / (2.0 + f);
    const vn z = s * s;
    const vn w = z * z;
    const vn t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    const vn t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    const vn r = t2 + t1;
    const vn yv = s * (hfsq + r) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
    std::memcpy(y + i, &yv, sizeof yv);
  }
  bool any = false;
  for (int t = 0; t < NW; ++t) any |= outside[t] != 0;
  if (any)
    for (std::int64_t i = 0; i < m; ++i)
      if (!(x[i] >= 2.2250738585072014e-308 && x[i] <= 1.7976931348623157e308)) y[i] = std::log(x[i]);
#else
  for (std::int64_t i = 0; i < m; ++i) y[i] = std::log(x[i]);
#endif
}

// ---------------------------------------------------------------------------
// 64-byte aligned scratch (plain new / delete: no standard-library templates here).
template <class T>
class Buffer {
 public:
  explicit Buffer(std::int64_t n) : raw_(new T[static_cast<std::size_t>(n) + 64 / sizeof(T)]()) {
    auto addr = reinterpret_cast<std::uintptr_t>(raw_);
    ptr_ = raw_ + ((64 - addr % 64) % 64) / sizeof(T);
  }
  ~Buffer() { delete[] raw_; }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return ptr_; }

 private:
  T* raw_;
  T* ptr_;
};

MAMBA_CTR_INLINE std::int64_t imin(std::int64_t a, std::int64_t b) { return a < b ? a : b; }
MAMBA_CTR_INLINE std::int64_t imax(std::int64_t a, std::int64_t b) { return a > b ? a : b; }
MAMBA_CTR_INLINE std::int64_t round_up(std::int64_t a, std::int64_t b) { return (a + b - 1) / b * b; }

using Plan = detail::PlanView;

// Per-thread scratch: at most one structure's worth.
struct Scratch {
  Buffer<std::int64_t> kmap;  // (S): active index of each site, -1 if skipped
  Buffer<std::int64_t> ek;    // (E): active site of each kept entry (pair-major)
  Buffer<std::int64_t> eoff;  // (P + 1)
  Buffer<double> zk, ew, ar, ai;  // (S), (E), (E), (E)
  Buffer<double> x, sn, cs;       // sincos arguments / results
  Buffer<double> st_s, st_c;      // (S): sin, cos of dq z
  Buffer<double> wr, wi;          // (S, BL): exp(i j dq z)
  Buffer<double> er, ei;          // (S, BL): exp(i qz z) of a block cut into several segments
  Buffer<double> gr, gi;          // (P, BL)
  Buffer<double> hc;              // (NP, NCHA, NSP, re/im, VW)

  explicit Scratch(const Plan& pl)
      : kmap(pl.S + 1), ek(pl.E + 1), eoff(pl.P + 1),
        zk(pl.S + 1), ew(pl.E + 1), ar(pl.E + 1), ai(pl.E + 1),
        x(round_up(BL * pl.S, VW) + VW), sn(round_up(BL * pl.S, VW) + VW),
        cs(round_up(BL * pl.S, VW) + VW), st_s(pl.S + VW), st_c(pl.S + VW),
        wr(pl.S * BL + VW), wi(pl.S * BL + VW), er(pl.S * BL + VW), ei(pl.S * BL + VW),
        gr(pl.P * BL + VW), gi(pl.P * BL + VW),
        hc(2 * pl.NP * pl.NSP * pl.NLP + VW) {}
};

// Store a chunk of U / I (len <= VW points) converted to Real.
#if defined(MAMBA_CTR_VECTOR_EXT) && !defined(__clang__)
#define MAMBA_CTR_VECTOR_STORE 1
typedef std::int64_t vni __attribute__((vector_size(NW * sizeof(double))));
typedef float vnf __attribute__((vector_size(NW * sizeof(float))));
typedef float vnf_unaligned __attribute__((vector_size(NW * sizeof(float)), aligned(sizeof(float))));
// interleave masks: lo = (re0, im0, re1, im1, ...), hi = the second half
#if defined(__AVX512F__)
constexpr vni kLo = {0, 8, 1, 9, 2, 10, 3, 11}, kHi = {4, 12, 5, 13, 6, 14, 7, 15};
#elif defined(__AVX__)
constexpr vni kLo = {0, 4, 1, 5}, kHi = {2, 6, 3, 7};
#else
constexpr vni kLo = {0, 2}, kHi = {1, 3};
#endif

MAMBA_CTR_INLINE void put(double* out, vn v) { *reinterpret_cast<vn_unaligned*>(out) = v; }
MAMBA_CTR_INLINE void put(float* out, vn v) {
  *reinterpret_cast<vnf_unaligned*>(out) = __builtin_convertvector(v, vnf);
}

template <class Real>
MAMBA_CTR_INLINE void store_complex_full(Real* out, const vd& re, const vd& im) {
  for (int k = 0; k < NPART; ++k) {
    put(out + 2 * k * NW, __builtin_shuffle(re.p[k], im.p[k], kLo));
    put(out + 2 * k * NW + NW, __builtin_shuffle(re.p[k], im.p[k], kHi));
  }
}
template <class Real>
MAMBA_CTR_INLINE void store_real_full(Real* out, const vd& v) {
  for (int k = 0; k < NPART; ++k) put(out + k * NW, v.p[k]);
}
#else
template <class Real>
MAMBA_CTR_INLINE void store_complex_full(Real* out, const vd& re, const vd& im) {
  for (int t = 0; t < VW; ++t) {
    out[2 * t] = static_cast<Real>(lane(re, t));
    out[2 * t + 1] = static_cast<Real>(lane(im, t));
  }
}
template <class Real>
MAMBA_CTR_INLINE void store_real_full(Real* out, const vd& v) {
  for (int t = 0; t < VW; ++t) out[t] = static_cast<Real>(lane(v, t));
}
#endif

template <class Real>
MAMBA_CTR_INLINE void store_complex(std::complex<Real>* out, const vd& re, const vd& im, int len) {
  Real* o = reinterpret_cast<Real*>(out);
  if (len == VW) {
    store_complex_full(o, re, im);
  } else {
    alignas(64) Real tmp[2 * VW];
    store_complex_full(tmp, re, im);
    std::memcpy(o, tmp, static_cast<std::size_t>(2 * len) * sizeof(Real));
  }
}

template <class Real>
MAMBA_CTR_INLINE void store_real(Real* out, const vd& v, int len) {
  if (len == VW) {
    store_real_full(out, v);
  } else {
    alignas(64) Real tmp[VW];
    store_real_full(tmp, v);
    std::memcpy(out, tmp, static_cast<std::size_t>(len) * sizeof(Real));
  }
}

template <class Real, bool RealFF, bool RealPhase>
void one_structure(const Plan& pl, Scratch& sc, std::int64_t i, std::complex<Real>* U, Real* I) {
  const std::int64_t S = pl.S, E = pl.E, P = pl.P, NSP = pl.NSP, R = pl.R, NL = pl.NL;
  const double* zi = pl.z + i * S;
  const double* wi_ = pl.weight + i * E;

  std::int64_t* kmap = sc.kmap.get();
  std::int64_t* ekw = sc.ek.get();
  std::int64_t* eofw = sc.eoff.get();

  // Active sites and the kept entries, grouped by pair.
  std::int64_t K = 0;
  double* zk = sc.zk.get();
  for (std::int64_t s = 0; s < S; ++s) {
    bool any = false;
    for (std::int64_t e = pl.site_off[s]; e < pl.site_off[s + 1]; ++e) any |= (wi_[e] != 0.0);
    kmap[s] = any ? K : -1;
    if (any) zk[K++] = zi[s];
  }
  double* ew = sc.ew.get();
  std::int64_t cnt = 0;
  for (std::int64_t q = 0; q < P; ++q) {
    eofw[q] = cnt;
    for (std::int64_t t = pl.pair_off[q]; t < pl.pair_off[q + 1]; ++t) {
      const std::int64_t e = pl.pair_entries[t];
      const double w = wi_[e];
      if (w != 0.0) {
        ekw[cnt] = kmap[pl.entry_site[e]];
        ew[cnt] = w;
        ++cnt;
      }
    }
  }
  eofw[P] = cnt;

  double* x = sc.x.get();
  double* sn = sc.sn.get();
  double* cs = sc.cs.get();
  double* Wr = sc.wr.get();
  double* Wi = sc.wi.get();

  if (pl.have_w) {
    // W[k][j] = exp(i j dq z_k), j < BL, from sincos(dq z_k): W[j] = W[j-1] W[1] up to kWStep,
    // then W[j] = W[j - kWStep] W[kWStep]. The order of the products is fixed (it does not
    // depend on the vector width), so all ISA variants give the same bits.
    double* ss = sc.st_s.get();
    double* sc_ = sc.st_c.get();
    for (std::int64_t k = 0; k < K; ++k) x[k] = pl.step * zk[k];
    const std::int64_t Kp = round_up(K, VW);
    for (std::int64_t k = K; k < Kp; ++k) x[k] = 0.0;
    sincos_block(x, Kp, ss, sc_);
    constexpr int WS = detail::kWStep;
    for (std::int64_t k = 0; k < K; ++k) {
      double* wr = Wr + k * BL;
      double* wi = Wi + k * BL;
      const double cr = sc_[k], ci = ss[k];
      wr[0] = 1.0;
      wi[0] = 0.0;
      for (int j = 1; j <= WS; ++j) {
        wr[j] = wr[j - 1] * cr - wi[j - 1] * ci;
        wi[j] = wr[j - 1] * ci + wi[j - 1] * cr;
      }
      const double c8 = wr[WS], s8 = wi[WS];
      for (int j0 = WS + 1; j0 < BL; j0 += WS) {
        const int j1 = j0 + WS < BL ? j0 + WS : BL;
        for (int j = j0; j < j1; ++j) {
          wr[j] = wr[j - WS] * c8 - wi[j - WS] * s8;
          wi[j] = wr[j - WS] * s8 + wi[j - WS] * c8;
        }
      }
    }
  }

  double* Gr = sc.gr.get();
  double* Gi = sc.gi.get();
  double* Hc = sc.hc.get();
  double* Er = sc.er.get();
  double* Ei = sc.ei.get();
  const std::int64_t NCHA = pl.NCHA;
  double* Ar = sc.ar.get();
  double* Ai = sc.ai.get();
  const std::int64_t* ek = sc.ek.get();
  const std::int64_t* eoff = sc.eoff.get();

  // Seeds exp(i seg_q z_k) of the segments of blocks [seed_block, seed_end), computed in groups of
  // blocks of at most BL * S values; segment g, site k at (g - seed_base) * K + k.
  std::int64_t seed_end = 0, seed_base = 0;
  const std::int64_t seed_cap = BL * S;
  for (std::int64_t b = 0; b < pl.NB; ++b) {
    const std::int64_t l0 = b * BL;
    const int nb = static_cast<int>(imin(BL, NL - l0));
    const int nch = (nb + VW - 1) / VW;

    if (b == seed_end) {
      seed_base = pl.seg_off[b];
      std::int64_t e = b;
      while (e < pl.NB && (pl.seg_off[e + 1] - seed_base) * K <= seed_cap) ++e;
      const std::int64_t M = (pl.seg_off[e] - seed_base) * K, Mp = round_up(M, VW);
      for (std::int64_t g = seed_base; g < pl.seg_off[e]; ++g) {
        const double q = pl.seg_q[g];
        double* xg = x + (g - seed_base) * K;
        for (std::int64_t k = 0; k < K; ++k) xg[k] = q * zk[k];
      }
      for (std::int64_t k = M; k < Mp; ++k) x[k] = 0.0;
      sincos_block(x, Mp, sn, cs);
      seed_end = e;
    }
    const std::int64_t g0 = pl.seg_off[b], ng = pl.seg_off[b + 1] - g0;
    const double* sb = sn + (g0 - seed_base) * K;
    const double* cb = cs + (g0 - seed_base) * K;

    // G[pair] = sum_e A_e X[site_e]: one segment spanning the block (an evenly spaced run):
    // A = weight * seed, X = W; else X = exp(i qz z) of each point (seed * W inside each
    // segment) and A = weight (real).
    const bool whole = ng == 1 && pl.have_w;
    if (whole) {
      for (std::int64_t t = 0; t < cnt; ++t) {
        Ar[t] = ew[t] * cb[ek[t]];
        Ai[t] = ew[t] * sb[ek[t]];
      }
    } else {
      for (std::int64_t k = 0; k < K; ++k) {
        double* er = Er + k * BL;
        double* ei = Ei + k * BL;
        const double* wr = Wr + k * BL;
        const double* wi = Wi + k * BL;
        for (std::int64_t g = 0; g < ng; ++g) {
          const double sr = cb[g * K + k], si = sb[g * K + k];
          const std::int64_t j0 = pl.seg_j[g0 + g], m = pl.seg_len[g0 + g];
          if (m == 1) {
            er[j0] = sr;
            ei[j0] = si;
            continue;
          }
          for (std::int64_t t = 0; t < m; ++t) {
            er[j0 + t] = sr * wr[t] - si * wi[t];
            ei[j0 + t] = sr * wi[t] + si * wr[t];
          }
        }
        for (int j = nb; j < nch * VW; ++j) er[j] = ei[j] = 0.0;
      }
    }
    const double* Xr = whole ? Wr : Er;
    const double* Xi = whole ? Wi : Ei;
    for (std::int64_t q = 0; q < P; ++q) {
      for (int ch = 0; ch < nch; ++ch) {
        vd accr = vzero(), acci = vzero();
        if (whole) {
          for (std::int64_t t = eoff[q]; t < eoff[q + 1]; ++t) {
            const std::int64_t off = ek[t] * BL + ch * VW;
            const vd wr = vload(Xr + off), wi = vload(Xi + off);
            const double a = Ar[t], c = Ai[t];
            accr = accr + (wr * a - wi * c);
            acci = acci + (wi * a + wr * c);
          }
        } else {
          for (std::int64_t t = eoff[q]; t < eoff[q + 1]; ++t) {
            const std::int64_t off = ek[t] * BL + ch * VW;
            const double a = ew[t];
            accr = accr + vload(Xr + off) * a;
            acci = acci + vload(Xi + off) * a;
          }
        }
        vstore(Gr + q * BL + ch * VW, accr);
        vstore(Gi + q * BL + ch * VW, acci);
      }
    }

    // H[p, sp] = sum_{pairs of sp} phase[p, pair] G[pair]
    for (std::int64_t p = 0; p < pl.NP; ++p) {
      const double* phr = pl.ph_re + p * P;
      const double* phi = pl.ph_im + p * P;
      for (std::int64_t sp = 0; sp < NSP; ++sp) {
        for (int ch = 0; ch < nch; ++ch) {
          vd accr = vzero(), acci = vzero();
          for (std::int64_t t = pl.sp_off[sp]; t < pl.sp_off[sp + 1]; ++t) {
            const std::int64_t q = pl.sp_pairs[t];
            const vd gr = vload(Gr + q * BL + ch * VW), gi = vload(Gi + q * BL + ch * VW);
            if (RealPhase) {
              const double a = phr[q];
              accr = accr + gr * a;
              acci = acci + gi * a;
            } else {
              const double a = phr[q], c = phi[q];
              accr = accr + (gr * a - gi * c);
              acci = acci + (gi * a + gr * c);
            }
          }
          double* h = Hc + ((p * NCHA + l0 / VW + ch) * NSP + sp) * 2 * VW;
          vstore(h, accr);
          vstore(h + VW, acci);
        }
      }
    }

  }

  // U[r] = sum_sp ff[sp, r] H[pattern(r), sp];  I[r] = |S + U|^2 rough. One rod at a time
  // over the whole L range, so that the form-factor rows are read as long streams.
  const std::int64_t nch_all = (NL + VW - 1) / VW;
  for (std::int64_t r = 0; r < R; ++r) {
    const std::int64_t p = pl.rod_pattern[r];
    const std::int64_t nc = RealFF ? 1 : 2;
    const double* hp = Hc + p * NCHA * NSP * 2 * VW;
    const double* fp = pl.ffc + r * NCHA * NSP * nc * VW;
    for (std::int64_t ch = 0; ch < nch_all; ++ch) {
        const std::int64_t l = ch * VW;
        const int len = static_cast<int>(imin(VW, NL - l));
        const double* h = hp + ch * NSP * 2 * VW;
        const double* f = fp + ch * NSP * nc * VW;
        // two species per step: shorter dependency chains on the accumulators
        vd ur = vzero(), ui = vzero();
        std::int64_t sp = 0;
        for (; sp + 1 < NSP; sp += 2) {
          const vd f0 = vload(f + sp * nc * VW), f1 = vload(f + (sp + 1) * nc * VW);
          const vd a0 = vload(h + sp * 2 * VW), b0 = vload(h + sp * 2 * VW + VW);
          const vd a1 = vload(h + (sp + 1) * 2 * VW), b1 = vload(h + (sp + 1) * 2 * VW + VW);
          if (RealFF) {
            ur = ur + (f0 * a0 + f1 * a1);
            ui = ui + (f0 * b0 + f1 * b1);
          } else {
            const vd g0 = vload(f + sp * nc * VW + VW), g1 = vload(f + (sp + 1) * nc * VW + VW);
            ur = ur + ((f0 * a0 - g0 * b0) + (f1 * a1 - g1 * b1));
            ui = ui + ((f0 * b0 + g0 * a0) + (f1 * b1 + g1 * a1));
          }
        }
        if (sp < NSP) {
          const vd f0 = vload(f + sp * nc * VW);
          const vd a0 = vload(h + sp * 2 * VW), b0 = vload(h + sp * 2 * VW + VW);
          if (RealFF) {
            ur = ur + f0 * a0;
            ui = ui + f0 * b0;
          } else {
            const vd g0 = vload(f + sp * nc * VW + VW);
            ur = ur + (f0 * a0 - g0 * b0);
            ui = ui + (f0 * b0 + g0 * a0);
          }
        }
        const std::int64_t o = (i * R + r) * NL + l;
        if (U) store_complex<Real>(U + o, ur, ui, len);
        if (I) {
          const vd tr = vload_n(pl.sub_re + r * NL + l, len) + ur;
          const vd ti = vload_n(pl.sub_im + r * NL + l, len) + ui;
          vd v = tr * tr + ti * ti;
          if (pl.rough) v = v * vload_n(pl.rough + i * NL + l, len);
          store_real<Real>(I + o, v, len);
        }
    }
  }
}

// Add structure i, the k-th (from 1) of its group, to the group's moments mom (6, R NL): Welford's
// update of the means and M2 of X = ln I (0 at Bragg points), Re U and Im U as stored (Real).
// xs: scratch of 2 round_up(R NL, NW) doubles; keep: the Bragg bit mask of `fill_keep`. Elementwise, no
// FMA: the same bits in every variant.
template <class Real>
void add_moments(const Plan& pl, std::int64_t i, std::int64_t k, const std::complex<Real>* U,
                 const Real* I, double* mom, double* xs, const std::uint64_t* __restrict__ keep) {
  const std::int64_t NL = pl.NL, RL = pl.R * NL;
  const Real* __restrict__ in = I + i * RL;
  const Real* __restrict__ u = reinterpret_cast<const Real*>(U + i * RL);
  const std::int64_t RLp = round_up(RL, NW);
  double* __restrict__ xd = xs;
  double* __restrict__ ys = xs + RLp;
  for (std::int64_t p = 0; p < RL; ++p) xd[p] = static_cast<double>(in[p]);
  for (std::int64_t p = RL; p < RLp; ++p) xd[p] = 1.0;
  log_block(xd, RLp, ys);
  // X in Real, as stored; +0.0 at Bragg points by a bit mask (keep: all ones, or 0 at a Bragg point),
  // which vectorises where a branch on the uint8 mask did not
  for (std::int64_t p = 0; p < RL; ++p) {
    const double v = static_cast<double>(static_cast<Real>(ys[p]));
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    bits &= keep[p];
    std::memcpy(&xd[p], &bits, sizeof bits);
  }
  const double inv = 1.0 / static_cast<double>(k);
  double* __restrict__ mx = mom;
  double* __restrict__ mr = mom + RL;
  double* __restrict__ mi = mom + 2 * RL;
  double* __restrict__ qx = mom + 3 * RL;
  double* __restrict__ qr = mom + 4 * RL;
  double* __restrict__ qi = mom + 5 * RL;
  const double* __restrict__ xs_ = xd;
#pragma GCC ivdep
  for (std::int64_t p = 0; p < RL; ++p) {
    const double x = xs_[p], a = static_cast<double>(u[2 * p]), b = static_cast<double>(u[2 * p + 1]);
    const double dx = x - mx[p], da = a - mr[p], db = b - mi[p];
    mx[p] = mx[p] + dx * inv;
    mr[p] = mr[p] + da * inv;
    mi[p] = mi[p] + db * inv;
    qx[p] = qx[p] + dx * (x - mx[p]);
    qr[p] = qr[p] + da * (a - mr[p]);
    qi[p] = qi[p] + db * (b - mi[p]);
  }
}

// The Bragg bit mask of add_moments, (R NL): 0 at a Bragg point, all ones elsewhere.
void fill_keep(const Plan& pl, std::uint64_t* keep) {
  for (std::int64_t r = 0; r < pl.R; ++r)
    for (std::int64_t l = 0; l < pl.NL; ++l) keep[r * pl.NL + l] = pl.bragg[l] ? 0 : ~std::uint64_t{0};
}

// Structures [g kGroup, (g + 1) kGroup) in order, each added to the group's moments.
template <class Real, bool RealFF, bool RealPhase>
void one_group(const Plan& pl, Scratch& sc, double* xs, const std::uint64_t* keep, std::int64_t g,
               std::complex<Real>* U, Real* I) {
  const std::int64_t RL = pl.R * pl.NL;
  double* mom = pl.moments + g * 6 * RL;
  for (std::int64_t p = 0; p < 6 * RL; ++p) mom[p] = 0.0;
  const std::int64_t lo = g * kGroup, hi = imin(pl.n, lo + kGroup);
  for (std::int64_t i = lo; i < hi; ++i) {
    one_structure<Real, RealFF, RealPhase>(pl, sc, i, U, I);
    add_moments<Real>(pl, i, i - lo + 1, U, I, mom, xs, keep);
  }
}

#ifdef MAMBA_CTR_HAVE_OPENMP
// Threads of a team for `work` items: the caller's count (already resolved, >= 1, by Plan::run) but no more
// threads than items.
inline int team_size(int threads, std::int64_t work) {
  const std::int64_t nt = imin(threads, work);
  return nt < 1 ? 1 : static_cast<int>(nt);
}
#endif

template <class Real, bool RealFF, bool RealPhase>
void run_all(const Plan& pl, std::complex<Real>* U, Real* I, int threads) {
  const std::int64_t n = pl.n;
  if (pl.moments) {  // work split over groups of structures, each group by one thread
    const std::int64_t NG = (n + kGroup - 1) / kGroup;
    const std::int64_t xs_size = 2 * round_up(pl.R * pl.NL, NW) + NW;
#ifdef MAMBA_CTR_HAVE_OPENMP
#pragma omp parallel num_threads(team_size(threads, NG))
    {
      Scratch sc(pl);
      Buffer<double> xs(xs_size);
      Buffer<std::uint64_t> keep(pl.R * pl.NL + 1);
      fill_keep(pl, keep.get());
      // dynamic: a thread that loses its core to another process (the dataset writer, a busy machine)
      // does not hold the others up; each group has its own slot, so the bits stay the same
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t g = 0; g < NG; ++g)
        one_group<Real, RealFF, RealPhase>(pl, sc, xs.get(), keep.get(), g, U, I);
    }
#else
    (void)threads;
    Scratch sc(pl);
    Buffer<double> xs(xs_size);
    Buffer<std::uint64_t> keep(pl.R * pl.NL + 1);
    fill_keep(pl, keep.get());
    for (std::int64_t g = 0; g < NG; ++g) one_group<Real, RealFF, RealPhase>(pl, sc, xs.get(), keep.get(), g, U, I);
#endif
    return;
  }
#ifdef MAMBA_CTR_HAVE_OPENMP
#pragma omp parallel num_threads(team_size(threads, n))
  {
    Scratch sc(pl);
    // dynamic chunks of structures (see above); a structure's bits do not depend on its thread
#pragma omp for schedule(dynamic, 16)
    for (std::int64_t i = 0; i < n; ++i) one_structure<Real, RealFF, RealPhase>(pl, sc, i, U, I);
  }
#else
  (void)threads;
  Scratch sc(pl);
  for (std::int64_t i = 0; i < n; ++i) one_structure<Real, RealFF, RealPhase>(pl, sc, i, U, I);
#endif
}

template <class Real>
void run_any(const Plan& pl, std::complex<Real>* U, Real* I, int threads) {
  if (pl.real_ff) {
    if (pl.real_phase)
      run_all<Real, true, true>(pl, U, I, threads);
    else
      run_all<Real, true, false>(pl, U, I, threads);
  } else {
    if (pl.real_phase)
      run_all<Real, false, true>(pl, U, I, threads);
    else
      run_all<Real, false, false>(pl, U, I, threads);
  }
}

}  // namespace

int chunk_width() noexcept { return VW; }

void run(const PlanView& pl, std::complex<float>* U, float* I, int threads) {
  run_any<float>(pl, U, I, threads);
}
void run(const PlanView& pl, std::complex<double>* U, double* I, int threads) {
  run_any<double>(pl, U, I, threads);
}

}  // namespace MAMBA_CTR_VARIANT
}  // namespace detail
}  // namespace mamba_ctr
