// NumPy .npy read/write (format versions 1.0-3.0, little-endian, C order).
#pragma once

#include <string>

#include "io/raw_tensor.h"

namespace wavtok {

// Throws wavtok::Error naming `path` on malformed input; rejects big-endian data. Fortran-order files
// (NumPy writes column-major arrays that way) are reordered, so the result is always row-major.
RawTensor read_npy(const std::string& path);
// Writes atomically (temp file + rename) so a failure leaves no partial file.
void write_npy(const std::string& path, const RawTensor& t);

}  // namespace wavtok
