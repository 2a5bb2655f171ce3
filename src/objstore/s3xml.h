/*
 * s3xml.h — the little XML that S3 responses need: find <Tag>text</Tag> elements (exact tag names, no
 * attributes on the searched tags, "<Tag/>" as empty) inside a region, and decode the five predefined
 * entities and numeric character references. Never reads outside the given slice; malformed input
 * just yields "not found". Not a general XML parser (S3 does not need one).
 */
#ifndef STRATA_OBJSTORE_S3XML_H
#define STRATA_OBJSTORE_S3XML_H

#include <stdbool.h>

#include "base/str.h"

/* Find the next <tag>...</tag> at or after *pos in doc; on success *inner is the raw content and *pos
 * moves past the closing tag. */
bool s3xml_next(str_t doc, size_t *pos, const char *tag, str_t *inner);
/* First <tag> in doc, entity-decoded into out (appended). */
bool s3xml_get(str_t doc, const char *tag, buf_t *out);
/* Append the entity-decoded text of raw to out; false on a malformed entity (out still gets the rest). */
bool s3xml_decode(str_t raw, buf_t *out);
/* Append s with &, <, >, ", ' escaped. */
void s3xml_escape(buf_t *out, const char *s);

#endif
