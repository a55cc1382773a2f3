// Python bindings of the mamba-ctr kernel (the only file that includes pybind11).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "mamba_ctr/film_fields.hpp"

namespace py = pybind11;

namespace {

constexpr int kIn = py::array::c_style | py::array::forcecast;
using ArrF = py::array_t<double, kIn>;
using ArrI = py::array_t<std::int64_t, kIn>;
using ArrC = py::array_t<std::complex<double>, kIn>;

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (std::size_t k = 0; k < shape.size(); ++k) s << (k ? ", " : "") << shape[k];
  if (shape.size() == 1) s << ",";
  s << ")";
  return s.str();
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

void check_ndim(const char* name, const py::array& a, const char* symbols, int ndim) {
  if (a.ndim() != ndim) {
    std::ostringstream m;
    m << name << " must have shape " << symbols << " (" << ndim << "-D), got "
      << shape_str(shape_of(a));
    fail(m.str());
  }
}

void check_shape(const char* name, const py::array& a, const char* symbols,
                 const std::vector<py::ssize_t>& expected) {
  if (shape_of(a) != expected) {
    std::ostringstream m;
    m << name << " must have shape " << symbols << " = " << shape_str(expected) << ", got "
      << shape_str(shape_of(a));
    fail(m.str());
  }
}

void check_finite(const char* name, const ArrF& a) {
  const double* p = a.data();
  for (py::ssize_t k = 0; k < a.size(); ++k)
    if (!std::isfinite(p[k])) fail(std::string(name) + " must be finite, got a non-finite value");
}

// Output array: None, or a writeable C-contiguous array of one of two dtypes and the given shape.
// Returns 0 for None, 1 for the single-precision dtype, 2 for the double one.
template <class Single, class Double>
int check_output(const char* name, const py::object& obj, const char* dtypes,
                 const std::vector<py::ssize_t>& expected, py::array& arr) {
  if (obj.is_none()) return 0;
  if (!py::isinstance<py::array>(obj)) {
    std::string tname = py::str(py::type::of(obj).attr("__name__"));
    fail(std::string(name) + " must be a numpy array or None, got " + tname);
  }
  arr = py::reinterpret_borrow<py::array>(obj);
  int kind = 0;
  if (arr.dtype().equal(py::dtype::of<Single>()))
    kind = 1;
  else if (arr.dtype().equal(py::dtype::of<Double>()))
    kind = 2;
  else {
    std::string got = py::str(arr.dtype());
    fail(std::string(name) + " must have dtype " + dtypes + ", got " + got);
  }
  check_shape(name, arr, "(n, R, NL)", expected);
  if (!(arr.flags() & py::array::c_style))
    fail(std::string(name) + " must be C-contiguous, got a non-contiguous array");
  if (!arr.writeable()) fail(std::string(name) + " must be writeable, got a read-only array");
  return kind;
}

// The plan of (model, grid): the structure-independent tables, checked and laid out once.
std::unique_ptr<mamba_ctr::Plan> make_plan(ArrI entry_site, ArrI entry_pair, ArrI pair_column,
                                           ArrI pair_species, ArrC pattern_phase, ArrI rod_pattern,
                                           ArrF qz, double uniform_step, ArrF ff_re, ArrF ff_im,
                                           ArrC substrate, py::ssize_t n_sites,
                                           const std::string& isa) {
  check_ndim("entry_site", entry_site, "(E,)", 1);
  const py::ssize_t E = entry_site.shape(0);
  check_shape("entry_pair", entry_pair, "(E,)", {E});
  check_ndim("pair_column", pair_column, "(P,)", 1);
  const py::ssize_t P = pair_column.shape(0);
  check_shape("pair_species", pair_species, "(P,)", {P});
  check_ndim("pattern_phase", pattern_phase, "(NP, C)", 2);
  check_ndim("rod_pattern", rod_pattern, "(R,)", 1);
  const py::ssize_t R = rod_pattern.shape(0);
  check_ndim("qz", qz, "(NL,)", 1);
  const py::ssize_t NL = qz.shape(0);
  check_ndim("ff_re", ff_re, "(NSP, R, NL)", 3);
  const py::ssize_t NSP = ff_re.shape(0);
  check_shape("ff_re", ff_re, "(NSP, R, NL)", {NSP, R, NL});
  const bool real_ff = ff_im.size() == 0;
  if (!real_ff) check_shape("ff_im", ff_im, "(NSP, R, NL) or size 0", {NSP, R, NL});
  check_shape("substrate", substrate, "(R, NL)", {R, NL});
  if (n_sites < 0) fail("n_sites must be an integer >= 0, got " + std::to_string(n_sites));

  mamba_ctr::PlanTables t;
  t.n_sites = n_sites;
  t.n_entries = E;
  t.n_pairs = P;
  t.n_columns = pattern_phase.shape(1);
  t.n_patterns = pattern_phase.shape(0);
  t.n_species = NSP;
  t.n_rods = R;
  t.n_l = NL;
  t.entry_site = entry_site.data();
  t.entry_pair = entry_pair.data();
  t.pair_column = pair_column.data();
  t.pair_species = pair_species.data();
  t.pattern_phase = pattern_phase.data();
  t.rod_pattern = rod_pattern.data();
  t.qz = qz.data();
  t.uniform_step = uniform_step;
  t.ff_re = ff_re.data();
  t.ff_im = real_ff ? nullptr : ff_im.data();
  t.substrate = substrate.data();
  return std::make_unique<mamba_ctr::Plan>(t, isa);  // std::invalid_argument -> ValueError
}

// One call: checks the per-structure arrays and the outputs, then runs without the GIL.
void run_plan(const mamba_ctr::Plan& plan, ArrF z, ArrF weight, std::optional<ArrF> rough,
              py::object film_field, py::object intensity, int threads, py::object bragg,
              py::object moments) {
  check_ndim("z", z, "(n, S)", 2);
  const py::ssize_t n = z.shape(0), R = plan.n_rods(), NL = plan.n_l();
  check_shape("z", z, "(n, S)", {n, plan.n_sites()});
  check_shape("weight", weight, "(n, E)", {n, plan.n_entries()});
  const bool has_rough = rough.has_value() && rough->size() != 0;
  if (has_rough) check_shape("rough", *rough, "(n, NL) or size 0", {n, NL});
  if (threads < 0) fail("threads must be an integer >= 0, got " + std::to_string(threads));
  check_finite("z", z);

  const std::vector<py::ssize_t> out_shape{n, R, NL};
  py::array u_arr, i_arr;
  const int u_kind = check_output<std::complex<float>, std::complex<double>>(
      "film_field", film_field, "complex64 or complex128", out_shape, u_arr);
  const int i_kind = check_output<float, double>("intensity", intensity, "float32 or float64",
                                                 out_shape, i_arr);
  if (u_kind && i_kind) {
    if (u_kind != i_kind) {
      std::string du = py::str(u_arr.dtype()), di = py::str(i_arr.dtype());
      fail("film_field and intensity must both be single (complex64, float32) or both double "
           "(complex128, float64) precision, got " + du + " and " + di);
    }
    const char* ub = static_cast<const char*>(u_arr.data());
    const char* ib = static_cast<const char*>(i_arr.data());
    const py::ssize_t un = u_arr.nbytes(), inb = i_arr.nbytes();
    if (un > 0 && inb > 0 && ub < ib + inb && ib < ub + un)
      fail("film_field and intensity must not overlap in memory, got overlapping arrays");
  }
  const int kind = u_kind ? u_kind : i_kind;
  const double* rp = has_rough ? rough->data() : nullptr;

  // moments: (NG, 6, R, NL) float64, written in place; need both outputs and the Bragg mask
  py::array_t<std::uint8_t, kIn> mask;
  double* mp = nullptr;
  if (!moments.is_none()) {
    if (!(u_kind && i_kind)) fail("moments need both film_field and intensity, got only one of them");
    if (bragg.is_none()) fail("moments need bragg, the (NL,) Bragg mask, got None");
    mask = py::array_t<std::uint8_t, kIn>::ensure(bragg);
    if (!mask) fail("bragg must be an array of booleans, got an object numpy cannot convert");
    check_shape("bragg", mask, "(NL,)", {NL});
    if (!py::isinstance<py::array>(moments)) fail("moments must be a numpy array or None");
    auto m = py::reinterpret_borrow<py::array>(moments);
    const py::ssize_t NG = (n + mamba_ctr::kMomentGroup - 1) / mamba_ctr::kMomentGroup;
    if (!m.dtype().equal(py::dtype::of<double>()))
      fail("moments must have dtype float64, got " + std::string(py::str(m.dtype())));
    check_shape("moments", m, "(ceil(n / MOMENT_GROUP), 6, R, NL)", {NG, 6, R, NL});
    if (!(m.flags() & py::array::c_style) || !m.writeable())
      fail("moments must be a writeable C-contiguous array");
    mp = static_cast<double*>(m.mutable_data());
  }
  const std::uint8_t* bp = mp ? mask.data() : nullptr;
  if (kind == 1) {
    auto* U = u_kind ? static_cast<std::complex<float>*>(u_arr.mutable_data()) : nullptr;
    auto* I = i_kind ? static_cast<float*>(i_arr.mutable_data()) : nullptr;
    py::gil_scoped_release release;
    plan.run<float>(n, z.data(), weight.data(), rp, U, I, threads, bp, mp);
  } else if (kind == 2) {
    auto* U = u_kind ? static_cast<std::complex<double>*>(u_arr.mutable_data()) : nullptr;
    auto* I = i_kind ? static_cast<double*>(i_arr.mutable_data()) : nullptr;
    py::gil_scoped_release release;
    plan.run<double>(n, z.data(), weight.data(), rp, U, I, threads, bp, mp);
  }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() =
      "Compiled core of mamba-ctr (C++17 / OpenMP).\n\n"
      "Plan(...) holds the structure-independent tables of docs/kernel.md, checked once per\n"
      "(model, grid); Plan.run(z, weight, rough, ...) fills the film field U and the intensity\n"
      "I = |S + U|^2 * rough of a batch of structures. Work is split over structures (the GIL\n"
      "is released); the results do not depend on the thread count nor on the ISA variant.";

  py::class_<mamba_ctr::Plan>(m, "Plan", R"doc(The kernel's plan for one (model, grid) (docs/kernel.md).

Plan(entry_site, entry_pair, pair_column, pair_species, pattern_phase, rod_pattern, qz,
     uniform_step, ff_re, ff_im, substrate, n_sites, *, isa="")
Tables (converted to C-contiguous float64 / int64 / complex128 when needed, then copied):
  entry_site (E,) non-decreasing in [0, S), entry_pair (E,) in [0, P),
  pair_column (P,) in [0, C), pair_species (P,) in [0, NSP),
  pattern_phase (NP, C) complex, rod_pattern (R,) in [0, NP), qz (NL,) finite,
  uniform_step (> 0: spacing of qz's evenly spaced runs, recurrence inside them; 0: none),
  ff_re (NSP, R, NL), ff_im (NSP, R, NL) or size 0, substrate (R, NL) complex, n_sites S.
isa: "" for the variant isa() names (MAMBA_CTR_ISA may force one), or one of isa_variants()
(a test hook; all give the same bits).
Raises ValueError (expected vs given) on any shape, index or value problem.)doc")
      .def(py::init(&make_plan), py::arg("entry_site"), py::arg("entry_pair"),
           py::arg("pair_column"), py::arg("pair_species"), py::arg("pattern_phase"),
           py::arg("rod_pattern"), py::arg("qz"), py::arg("uniform_step"), py::arg("ff_re"),
           py::arg("ff_im"), py::arg("substrate"), py::arg("n_sites"), py::kw_only(),
           py::arg("isa") = std::string())
      .def("run", &run_plan, py::arg("z"), py::arg("weight"), py::arg("rough") = py::none(),
           py::arg("film_field") = py::none(), py::arg("intensity") = py::none(),
           py::arg("threads") = 0, py::arg("bragg") = py::none(), py::arg("moments") = py::none(),
           R"doc(Film fields of n structures, written in place.

Inputs (converted to C-contiguous float64 when needed): z (n, S) finite, weight (n, E),
rough (n, NL), size 0 or None.
Outputs (writeable, C-contiguous, shape (n, R, NL), both single or both double precision):
  film_field: complex64 / complex128 or None;  intensity: float32 / float64 or None.
threads: OpenMP threads, 0 = the runtime default. The GIL is released while it runs; one
plan may run in several Python threads at once.
moments (optional, with both outputs and bragg, the (NL,) Bragg mask): float64 (NG, 6, R, NL),
NG = ceil(n / MOMENT_GROUP): per group of MOMENT_GROUP structures (in index order, one thread
each: the bits do not depend on the thread count) the means and M2 (Welford) of X = ln I (0 at
the Bragg points), Re U and Im U as stored, rows (mean X, mean Re U, mean Im U, M2 X, M2 Re U,
M2 Im U), accumulated while each structure's outputs are in cache.
Raises ValueError (expected vs given) on any shape, dtype, value or output problem.)doc")
      .def_property_readonly("isa", &mamba_ctr::Plan::isa, "The ISA variant this plan runs.")
      .def_property_readonly("shape", [](const mamba_ctr::Plan& p) {
        return py::make_tuple(p.n_sites(), p.n_entries(), p.n_rods(), p.n_l());
      }, "(S, E, R, NL): sites and entries per structure, rods, points per rod.");

  m.attr("MOMENT_GROUP") = mamba_ctr::kMomentGroup;
  m.def("isa", &mamba_ctr::isa,
        "Name of the ISA variant of the kernel in use: 'baseline', 'avx2' (x86-64-v3) or\n"
        "'avx512' (x86-64-v4); the best one the CPU supports, chosen at the first call, unless\n"
        "the environment variable MAMBA_CTR_ISA forces one (ValueError if it cannot be used).\n"
        "All variants give bit-identical results.");
  m.def("isa_variants", &mamba_ctr::isa_variants,
        "The ISA variants compiled into this build that this CPU supports, baseline first.");
  m.def("max_threads", &mamba_ctr::max_threads, "OpenMP's default thread count (1 without OpenMP).");
  m.def("have_openmp", &mamba_ctr::have_openmp, "Whether the kernel was built with OpenMP.");
}
