/* Placeholder translation unit so a layer library exists before its first module lands. */
typedef int strata_empty_layer_t;
