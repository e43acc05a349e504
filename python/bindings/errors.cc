// Exceptions: C++ errors reach Python with their message as wavtok.Error (a RuntimeError), bad arguments as
// wavtok.InputError (also a ValueError).
#include <Python.h>

#include <new>

#include "python/bindings/bindings.h"

namespace wavtok::python {

namespace {
// New references held for the life of the process (module objects are never unloaded).
PyObject* g_error = nullptr;
PyObject* g_input_error = nullptr;
}  // namespace

void bind_errors(py::module_& m) {
  g_error = PyErr_NewExceptionWithDoc(
      "wavtok.Error", "An error from the wavtok engine (a bad model file, a model mismatch, ...); the message names "
      "the file or input and the problem.", PyExc_RuntimeError, nullptr);
  if (!g_error) throw py::error_already_set();
  py::tuple bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError));
  g_input_error = PyErr_NewExceptionWithDoc(
      "wavtok.InputError", "A bad argument (shape, dtype, NaN/Inf, a value out of range): both a wavtok.Error and a "
      "ValueError.", bases.ptr(), nullptr);
  if (!g_input_error) throw py::error_already_set();
  m.add_object("Error", g_error);
  m.add_object("InputError", g_input_error);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(g_input_error, e.what());
    } catch (const py::builtin_exception&) {
      throw;  // pybind11's own (value_error, ...): its default translator
    } catch (const py::error_already_set&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;  // MemoryError
    } catch (const std::exception& e) {
      PyErr_SetString(g_error, e.what());
    }
  });
}

}  // namespace wavtok::python
