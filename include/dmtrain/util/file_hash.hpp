// File checksums: FNV-1a-64 of a file's bytes, and a sidecar `<file>.fnv` that carries it.
//
// Contract: fnv1a64_file() hashes the bytes of a file (the same hash as the checkpoint manifests).
// write_hash_sidecar(file) fsyncs `file`, then writes `<file>.fnv` ("<16 hex digits>  <name>\n")
// through a temporary file that is fsync'ed and renamed, and fsyncs the folder: once the sidecar
// exists, the bytes it vouches for are on disk. verify_hash_sidecar(file) returns false when there
// is no sidecar (files written before sidecars existed), true when the hash matches, and throws
// dmtrain::Error naming the file when it does not (or the sidecar is unreadable). Why a sidecar
// and not a header: the files are torch archives that other tools read as they are.
#pragma once
#include <cstdint>
#include <string>

namespace dmtrain::util {

uint64_t fnv1a64_file(const std::string& path);
std::string hash_sidecar_path(const std::string& file);  // file + ".fnv"
void write_hash_sidecar(const std::string& file);
bool verify_hash_sidecar(const std::string& file);
// Flushes a file or folder to disk; throws dmtrain::Error when it cannot be opened.
void fsync_path(const std::string& path);

}  // namespace dmtrain::util
