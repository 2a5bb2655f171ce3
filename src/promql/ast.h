/*
 * ast.h — PromQL abstract syntax tree (Prometheus 2.42 grammar), parser and printer.
 *
 * promql_parse() turns a query into a tree allocated in the caller's arena (matchers are compiled and
 * released by an arena cleanup hook). Errors are ERR_INVALID with Prometheus's wording and position:
 * "1:5: parse error: unclosed left parenthesis". The tree is type-checked (function arguments,
 * aggregation parameters, binary operand types) exactly like Prometheus's parser does.
 * promql_expr_format() prints a tree the way Prometheus's String() does; parsing the output yields an
 * equal tree (round trip); promql_expr_pretty() is format_query's multi-line layout. Not thread-safe while parsing; a finished tree is read-only and shareable.
 */
#ifndef STRATA_PROMQL_AST_H
#define STRATA_PROMQL_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "model/matcher.h"

typedef enum promql_type {
	PROMQL_TYPE_NONE = 0,
	PROMQL_TYPE_SCALAR,
	PROMQL_TYPE_VECTOR,
	PROMQL_TYPE_MATRIX,
	PROMQL_TYPE_STRING,
} promql_type_t;

typedef enum promql_node_kind {
	PROMQL_NUMBER,
	PROMQL_STRING,
	PROMQL_VECTOR_SEL,
	PROMQL_MATRIX_SEL,
	PROMQL_SUBQUERY,
	PROMQL_PAREN,
	PROMQL_UNARY,
	PROMQL_BINARY,
	PROMQL_CALL,
	PROMQL_AGGR,
} promql_node_kind_t;

typedef enum promql_op {
	PROMQL_OP_NONE = 0,
	/* arithmetic */
	PROMQL_OP_ADD, PROMQL_OP_SUB, PROMQL_OP_MUL, PROMQL_OP_DIV, PROMQL_OP_MOD, PROMQL_OP_POW, PROMQL_OP_ATAN2,
	/* comparison */
	PROMQL_OP_EQLC, PROMQL_OP_NEQ, PROMQL_OP_LTE, PROMQL_OP_LSS, PROMQL_OP_GTE, PROMQL_OP_GTR,
	/* set */
	PROMQL_OP_AND, PROMQL_OP_OR, PROMQL_OP_UNLESS,
} promql_op_t;

typedef enum promql_aggr_op {
	PROMQL_AGG_SUM, PROMQL_AGG_AVG, PROMQL_AGG_COUNT, PROMQL_AGG_MIN, PROMQL_AGG_MAX, PROMQL_AGG_GROUP,
	PROMQL_AGG_STDDEV, PROMQL_AGG_STDVAR, PROMQL_AGG_TOPK, PROMQL_AGG_BOTTOMK, PROMQL_AGG_QUANTILE,
	PROMQL_AGG_COUNT_VALUES,
} promql_aggr_op_t;

typedef enum promql_card { PROMQL_CARD_ONE_TO_ONE, PROMQL_CARD_MANY_TO_ONE, PROMQL_CARD_ONE_TO_MANY, PROMQL_CARD_MANY_TO_MANY } promql_card_t;

enum { PROMQL_AT_NONE = 0, PROMQL_AT_TS = 1, PROMQL_AT_START = 2, PROMQL_AT_END = 3 };

typedef struct promql_func promql_func_t;
typedef struct promql_expr promql_expr_t;

struct promql_func {
	const char *name;
	promql_type_t args[5];
	int nargs;
	int variadic; /* 0 fixed, >0 up to that many optional trailing args, -1 unlimited */
	promql_type_t ret;
};

/* Modifiers shared by selectors and subqueries. */
typedef struct promql_mods {
	int64_t offset; /* ms, may be negative */
	int at_kind;    /* PROMQL_AT_* */
	int64_t at;     /* ms when at_kind == PROMQL_AT_TS */
} promql_mods_t;

struct promql_expr {
	promql_node_kind_t kind;
	int pos; /* byte offset of the node's start in the query */
	union {
		double number;
		str_t string;
		struct {
			str_t name; /* metric name or empty */
			matcher_t *ms;
			size_t nms;
			promql_mods_t mods;
		} vs;
		struct {
			promql_expr_t *vs; /* PROMQL_VECTOR_SEL; its mods hold offset/@ */
			int64_t range;
		} ms;
		struct {
			promql_expr_t *expr;
			int64_t range, step; /* step 0 = default evaluation interval */
			promql_mods_t mods;
		} sq;
		struct {
			promql_expr_t *expr;
		} paren;
		struct {
			promql_op_t op; /* ADD or SUB */
			promql_expr_t *expr;
		} unary;
		struct {
			promql_op_t op;
			promql_expr_t *lhs, *rhs;
			bool return_bool;
			bool has_matching; /* both sides vectors */
			promql_card_t card;
			bool on;
			str_t *labels; /* on/ignoring */
			size_t nlabels;
			str_t *include; /* group_left/right */
			size_t ninclude;
			promql_type_t type; /* SCALAR or VECTOR, set by the parser (NONE: computed) */
		} bin;
		struct {
			const promql_func_t *func;
			promql_expr_t **args;
			size_t nargs;
		} call;
		struct {
			promql_aggr_op_t op;
			promql_expr_t *expr, *param;
			bool without;
			bool has_grouping; /* by/without given (even empty) */
			str_t *grouping;
			size_t ngrouping;
		} aggr;
	} u;
};

int promql_parse(arena_t *a, const char *query, size_t len, promql_expr_t **out, err_t *err);
promql_type_t promql_expr_type(const promql_expr_t *e);
void promql_expr_format(buf_t *b, const promql_expr_t *e);
/* Append e as Prometheus 2.42's format_query prints it (its Prettify): a node whose one-line form is
 * longer than 100 bytes is split over lines, two spaces of indentation per level: an aggregation or
 * call as "op(" / its arguments one per line, comma-separated, one level deeper / ")"; parentheses
 * likewise; a binary expression as its operands one level deeper around a line holding the operator
 * and its bool/on/ignoring/group_left/group_right modifiers; a unary operator is glued to its operand's
 * form; a subquery appends its "[range:step] @ offset" to its inner expression's form and, like 2.42,
 * is not indented when it fits on one line. Selectors and literals are never split. The one-line forms
 * are Prometheus's String() exactly (also where promql_expr_format deviates to keep round trips). */
void promql_expr_pretty(buf_t *b, const promql_expr_t *e);
/* The same, stopping once b holds more than max bytes (long operator chains indent one level per
 * operator: 20,000 terms would print 400 MB); false then (b holds a truncated form). */
bool promql_expr_pretty_max(buf_t *b, const promql_expr_t *e, size_t max);
const char *promql_type_name(promql_type_t t); /* "scalar", "instant vector", "range vector", "string" */
const char *promql_op_str(promql_op_t op);
const char *promql_aggr_str(promql_aggr_op_t op);
const promql_func_t *promql_func_lookup(str_t name);
bool promql_op_is_comparison(promql_op_t op);
bool promql_op_is_set(promql_op_t op);

#endif
