// wavtok._wavtok: the Python extension behind the `wavtok` package (python/wavtok/__init__.py).
#include "python/bindings/bindings.h"

PYBIND11_MODULE(_wavtok, m) {
  m.doc() = "wavtok's C++ engine (loaded by the wavtok package; use `import wavtok`)";
  namespace w = wavtok::python;
  w::bind_errors(m);  // first: the other parts' errors translate through it
  w::bind_settings(m);
  w::bind_model(m);
  w::bind_streaming(m);
  w::bind_batch(m);
  // Parts added by other files go here.
}
