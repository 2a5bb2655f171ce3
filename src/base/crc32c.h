/*
 * crc32c.h — CRC-32C (Castagnoli). Uses the SSE4.2 instruction when the CPU has it, a slicing-by-8
 * table otherwise. Semantics of Go's crc32.Update: crc32c(0, p, n) is the checksum of p; passing a
 * previous result continues it. Prometheus stores these big-endian.
 */
#ifndef STRATA_BASE_CRC32C_H
#define STRATA_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *p, size_t n);
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n); /* table version, exposed for tests */

#endif
