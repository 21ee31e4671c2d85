/*
 * test_grammar.c: the grammar engine and JSON Schema translation
 * (src/sampling/grammar.h, json_schema.c).
 * - grammar text: accepted and refused sentences per construct; UTF-8
 *   classes byte by byte (invalid, overlong, surrogate sequences refused);
 *   errors for undefined rules, left recursion, grammars that never end;
 * - JSON Schema: per feature, texts that must be accepted and refused (each
 *   accepted text is also checked to be complete, each refused one to fail
 *   somewhere); unsupported/unsatisfiable/invalid schemas give their error;
 * - token masks against brute force on the default model's vocabulary
 *   (FASTCHAT_MODEL): on random states reached by random valid walks, the
 *   mask equals "advancing a copy of the state by the token's bytes
 *   succeeds" for every one of the 49,152 tokens (EOS: the state can end);
 * - every schema in tests/data/schemas compiles (the generation test in
 *   tests/py/test_grammar_generate.py validates what the model writes).
 */
#include "test_util.h"
#include "sampling/grammar.h"
#include "tokenizer/tokenizer.h"
#include "base/fc_base.h"

#include <dirent.h>
#include <string.h>

static int advance_str(const fc_grammar *g, const char *s, bool *end)
{
    fc_grammar_state *st = fc_grammar_state_new(g);
    bool ok = fc_grammar_state_advance(st, s, strlen(s));
    *end = fc_grammar_state_can_end(st);
    fc_grammar_state_free(st);
    return ok;
}

/* accepted: the whole text is a sentence. */
static bool sentence(const fc_grammar *g, const char *s)
{
    bool end;
    return advance_str(g, s, &end) && end;
}

/* ---- grammar text ---- */

typedef struct gcase { const char *grammar; const char *yes[8]; const char *no[8]; } gcase;

static const gcase GCASES[] = {
    {"root ::= \"ab\" | \"c\"", {"ab", "c"}, {"a", "abc", "b", ""}},
    {"root ::= [a-c]+ \"!\"", {"a!", "abcabc!"}, {"!", "ad!", "a"}},
    {"root ::= x y\nx ::= \"1\"?\ny ::= \"2\"*", {"", "1", "12", "2222"}, {"11", "21"}},
    {"root ::= (\"a\" | \"b\"){2,3}", {"ab", "bba", "aaa"}, {"a", "abab"}},
    {"root ::= \"x\"{3}", {"xxx"}, {"xx", "xxxx"}},
    {"root ::= [^a]", {"b", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}, {"a", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xff"}},
    {"root ::= [\\u00e9-\\u00ea] \"\\x41\"", {"\xc3\xa9" "A", "\xc3\xaa" "A"}, {"\xc3\xab" "A", "eA"}},
    {"root ::= . .", {"ab", "\xe4\xb8\xad\xe6\x96\x87"}, {"a", "\xe4\xb8"}},
    {"root ::= \"\\\"\" [\\]\\-]* # comment\n  \"end\"", {"\"]-end", "\"end"}, {"\"xend"}},
    {"root ::= e\ne ::= t (\"+\" t)*\nt ::= \"1\" | \"(\" e \")\"", {"1", "1+1", "(1+(1+1))"}, {"(1", "1+", "()"}},
};

static void test_grammar_text(void)
{
    char err[256];
    for (size_t i = 0; i < FC_ARRAY_LEN(GCASES); i++) {
        const gcase *c = &GCASES[i];
        fc_grammar *g = fc_grammar_parse(c->grammar, strlen(c->grammar), err, sizeof err);
        CHECKF(g != NULL, "%s: %s", c->grammar, err);
        if (!g) continue;
        for (int k = 0; k < 8 && c->yes[k]; k++) CHECKF(sentence(g, c->yes[k]), "%s must accept '%s'", c->grammar, c->yes[k]);
        for (int k = 0; k < 8 && c->no[k]; k++) CHECKF(!sentence(g, c->no[k]), "%s must refuse '%s'", c->grammar, c->no[k]);
        fc_grammar_free(g);
    }
    /* a refused byte leaves the state as it was */
    fc_grammar *g = fc_grammar_parse("root ::= \"abc\"", 14, err, sizeof err);
    fc_grammar_state *s = fc_grammar_state_new(g);
    CHECK(fc_grammar_state_advance(s, "a", 1));
    CHECK(!fc_grammar_state_advance(s, "bx", 2));
    CHECK(fc_grammar_state_advance(s, "bc", 2));
    CHECK(fc_grammar_state_can_end(s) && fc_grammar_state_is_final(s));
    fc_grammar_state *c2 = fc_grammar_state_clone(s);
    CHECK(fc_grammar_state_is_final(c2));
    fc_grammar_state_free(c2);
    fc_grammar_state_free(s);
    fc_grammar_free(g);

    static const struct { const char *g, *msg; } bad[] = {
        {"root ::= x", "not defined"},
        {"root ::= root \"a\" | \"b\"", "left recursion"},
        {"root ::= a\na ::= \"x\"? a \"y\" | \"z\"", "left recursion"},
        {"root ::= \"a\" root", "never complete"},
        {"root ::= \"a", "unterminated"},
        {"root ::= [b-a]", "out of order"},
        {"root ::= \"a\"{3,2}", "out of order"},
        {"root ::= (\"a\"", "expected ')'"},
        {"x ::= \"a\"", "no rule 'root'"},
        {"root ::= \"a\"\nroot ::= \"b\"", "defined twice"},
        {"root ::= \"\\xZZ\"", "bad \\x"},
        {"root ::= \"a\"{99999}", "above"},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        g = fc_grammar_parse(bad[i].g, strlen(bad[i].g), err, sizeof err);
        CHECKF(!g && strstr(err, bad[i].msg), "%s: got '%s', want '%s'", bad[i].g, g ? "(accepted)" : err, bad[i].msg);
        fc_grammar_free(g);
    }
}

/* ---- JSON Schema ---- */

typedef struct scase { const char *schema; const char *yes[8]; const char *no[10]; } scase;

static const scase SCASES[] = {
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"a\"]}",
     {"{\"a\":1}", "{\"a\": -12, \"b\": \"x\\\"y\"}", "{ \"a\" : 0 }", "{\n  \"a\": 5,\n  \"b\": \"\"\n}"},
     {"{}", "{\"b\":\"x\"}", "{\"a\":1.5}", "{\"a\":01}", "{\"a\":1,}", "{\"a\":1,\"c\":2}", "{\"b\":\"x\",\"a\":1}", "{\"a\":1}x", "{\"a\":1}  "}},
    {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"boolean\"},\"y\":{\"type\":\"null\"}}}",
     {"{}", "{\"x\":true}", "{\"y\":null}", "{\"x\":false,\"y\":null}"},
     {"{,\"y\":null}", "{\"x\":1}", "{\"y\":null,\"x\":true}"}},
    {"{\"type\":\"object\",\"additionalProperties\":false}", {"{}", "{ }"}, {"{\"a\":1}"}},
    {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"number\"}}",
     {"{}", "{\"k\":1.5e3,\"\\u00e9\":-0.25}"}, {"{\"k\":\"v\"}", "{\"k\":1e}"}},
    {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}",
     {"[1,2]", "[1, 2, 3]", "[ 1 , 2 ]"}, {"[]", "[1]", "[1,2,3,4]", "[1,\"a\"]", "[1,2,]"}},
    {"{\"type\":\"array\",\"maxItems\":0}", {"[]"}, {"[1]"}},
    {"{\"type\":\"array\"}", {"[]", "[1,\"a\",{\"b\":[null]},true]"}, {"[", "[1 2]"}},
    {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
     {"\"ab\"", "\"abc\"", "\"\\u00e9\\n\"", "\"\xe4\xb8\xad\xe6\x96\x87\""}, {"\"a\"", "\"abcd\"", "\"\xe4\xb8\xad\""}},
    {"{\"type\":\"string\"}", {"\"\"", "\"a\\\\b\\/\\t\\u0041\"", "\"\xf0\x9f\x98\x80\""},
     {"\"\\x\"", "\"\\ud800\"", "\"a\nb\"", "\"\x01\"", "'a'", "\"\xed\xa0\x80\""}},
    {"{\"enum\":[\"red\",\"green\",1,null,{\"a\":[1]}]}",
     {"\"red\"", "\"green\"", "1", "null", "{\"a\":[1]}"}, {"\"blue\"", "2", "\"Red\"", "{\"a\": [1]}"}},
    {"{\"type\":\"string\",\"enum\":[\"a\",1]}", {"\"a\""}, {"1"}},
    {"{\"const\":\"fixed\"}", {"\"fixed\""}, {"\"other\""}},
    {"{\"type\":\"integer\",\"minimum\":-5,\"maximum\":123}",
     {"-5", "0", "9", "10", "99", "100", "123", "-1"}, {"-6", "124", "200", "1000", "-0.5", "-10", "007"}},
    {"{\"type\":\"integer\",\"exclusiveMinimum\":0}", {"1", "42", "1000000"}, {"0", "-1"}},
    {"{\"type\":\"integer\",\"maximum\":1e30,\"minimum\":-1e30}", {"1", "-9999999999999999"}, {"1.5"}},
    {"{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", {"0", "0.5", "1", "1.0", "0.999"}, {"1.5", "-0.1", "2", "1.01"}},
    {"{\"type\":\"number\"}", {"0", "-1.5", "2e10", "3.25E-2"}, {"01", "1.", ".5", "+1", "1e", "NaN"}},
    {"{\"type\":\"boolean\"}", {"true", "false"}, {"True", "1"}},
    {"{\"type\":[\"string\",\"null\"],\"maxLength\":1}", {"null", "\"a\""}, {"\"ab\"", "1"}},
    {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"object\",\"properties\":{\"k\":{\"const\":1}},\"required\":[\"k\"]}]}",
     {"5", "{\"k\":1}"}, {"{\"k\":2}", "\"5\""}},
    {"{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"null\"}]}", {"true", "null"}, {"0"}},
    {"{\"$defs\":{\"p\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"string\"}},\"required\":[\"n\"]}},"
     "\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/p\"}}",
     {"[]", "[{\"n\":\"a\"},{\"n\":\"b\"}]"}, {"[{}]", "[{\"n\":1}]"}},
    {"{\"definitions\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
     "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/definitions/node\"}}},\"required\":[\"v\"]}},"
     "\"$ref\":\"#/definitions/node\"}",
     {"{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"v\":3}]}"}, {"{\"v\":1,\"kids\":[{}]}"}},
    {"{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3,4}$\"}", {"\"AB-123\"", "\"XY-9999\""}, {"\"ab-123\"", "\"AB-12\"", "\"AB-12345\""}},
    {"{\"type\":\"string\",\"pattern\":\"^(cat|dog)s?$\"}", {"\"cat\"", "\"dogs\""}, {"\"cow\"", "\"cats!\""}},
    {"{\"type\":\"string\",\"pattern\":\"^\\\\D[^\\\\w]$\"}", {"\"a!\"", "\"-.\""}, {"\"1!\"", "\"\xd9\xa3!\"", "\"!\xc3\xa9\""}},
    {"{\"type\":\"string\",\"pattern\":\"ab\"}", {"\"ab\"", "\"xxabyy\""}, {"\"a\"", "\"ba\""}},
    {"{\"type\":\"string\",\"pattern\":\"^a\\\"b\\\\\\\\c.$\"}", {"\"a\\\"b\\\\cz\""}, {"\"a\\\"b\\\\c\""}},
    {"{\"type\":\"string\",\"format\":\"date\"}", {"\"2024-02-29\""}, {"\"2024-13-01\"", "\"24-01-01\""}},
    {"{\"type\":\"string\",\"format\":\"uuid\"}", {"\"123e4567-e89b-12d3-a456-426614174000\""}, {"\"123\""}},
    {"{\"type\":\"string\",\"format\":\"date-time\"}", {"\"2024-01-02T03:04:05Z\"", "\"2024-01-02T03:04:05.123+01:00\""}, {"\"2024-01-02\""}},
    {"{\"type\":\"object\",\"required\":[\"z\"]}", {"{\"z\":[1,{\"q\":null}]}"}, {"{}"}},
    {"{\"type\":\"object\",\"properties\":{\"a\":false,\"b\":{\"type\":\"integer\"}}}", {"{}", "{\"b\":1}"}, {"{\"a\":1}"}},
    {"true", {"1", "\"s\"", "{\"a\":[]}", "null"}, {"", "x"}},
    {"{}", {"[true]", "-0.5"}, {"tru"}},
    {"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"description\":\"d\",\"title\":\"t\"}},"
     "\"required\":[\"name\"],\"additionalProperties\":false,\"$schema\":\"x\"}",
     {"{\"name\":\"\xe2\x82\xac\"}"}, {"{\"name\":\"a\",\"x\":1}"}},
    {"{\"type\":\"object\",\"properties\":{\"q\\\"k\":{\"type\":\"integer\"}},\"required\":[\"q\\\"k\"]}", {"{\"q\\\"k\":1}"}, {"{\"qk\":1}"}},
};

static void test_schemas(void)
{
    char err[256];
    for (size_t i = 0; i < FC_ARRAY_LEN(SCASES); i++) {
        const scase *c = &SCASES[i];
        fc_grammar *g = fc_grammar_from_json_schema(c->schema, strlen(c->schema), err, sizeof err);
        CHECKF(g != NULL, "%s: %s", c->schema, err);
        if (!g) continue;
        for (int k = 0; k < 8 && c->yes[k]; k++) CHECKF(sentence(g, c->yes[k]), "%s must accept %s", c->schema, c->yes[k]);
        for (int k = 0; k < 10 && c->no[k]; k++) CHECKF(!sentence(g, c->no[k]), "%s must refuse %s", c->schema, c->no[k]);
        fc_grammar_free(g);
    }
    char *t = fc_json_object_grammar();
    fc_grammar *g = fc_grammar_parse(t, strlen(t), err, sizeof err);
    CHECK(g && sentence(g, "{\"a\": [1, {\"b\": null}], \"c\": \"d\"}") && sentence(g, "{}"));
    CHECK(g && !sentence(g, "[1]") && !sentence(g, "\"x\"") && !sentence(g, "{\"a\":1,}"));
    /* whitespace is bounded: 21 spaces after a newline are too many */
    CHECK(g && sentence(g, "{\n                    \"a\":1}") && !sentence(g, "{\n                     \"a\":1}"));
    CHECK(g && !sentence(g, "{  \"a\":1}"));
    fc_grammar_free(g);
    free(t);

    static const struct { const char *s, *msg; } bad[] = {
        {"false", "unsatisfiable"},
        {"{\"enum\":[]}", "unsatisfiable"},
        {"{\"type\":\"integer\",\"enum\":[\"a\"]}", "unsatisfiable"},
        {"{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}", "unsatisfiable"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":2}", "unsatisfiable"},
        {"{\"type\":\"integer\",\"minimum\":1e20}", "unsatisfiable"},
        {"{\"type\":\"object\",\"properties\":{\"a\":false},\"required\":[\"a\"]}", "unsatisfiable"},
        {"{\"anyOf\":[false,{\"enum\":[]}]}", "unsatisfiable"},
        {"{\"type\":\"array\",\"uniqueItems\":true}", "unsupported: uniqueItems"},
        {"{\"not\":{}}", "unsupported: keyword 'not'"},
        {"{\"type\":\"integer\",\"multipleOf\":3}", "unsupported: keyword 'multipleOf'"},
        {"{\"type\":\"string\",\"pattern\":\"(?=a)\"}", "unsupported: pattern"},
        {"{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "unsupported: pattern"},
        {"{\"$ref\":\"http://x/y\"}", "unsupported: $ref"},
        {"{\"$ref\":\"#/$defs/missing\"}", "invalid schema"},
        {"{\"type\":\"strin\"}", "invalid schema: unknown type"},
        {"{\"type\":", "invalid schema: not valid JSON"},
        {"[1]", "invalid schema"},
        {"{\"allOf\":[{},{}]}", "unsupported: allOf"},
        {"{\"type\":\"number\",\"minimum\":0.5}", "unsupported: number bounds"},
        {"{\"type\":\"array\",\"items\":[{}]}", "unsupported: items as an array"},
        {"{\"type\":\"string\",\"pattern\":\"^[\\\"]$\"}", "unsatisfiable"},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        err[0] = 0;
        g = fc_grammar_from_json_schema(bad[i].s, strlen(bad[i].s), err, sizeof err);
        bool kind = !strncmp(err, "unsupported: ", 13) || !strncmp(err, "unsatisfiable: ", 15) ||
                    !strncmp(err, "invalid schema: ", 16);
        CHECKF(!g && kind && strstr(err, bad[i].msg), "%s: got '%s', want '%s'", bad[i].s, g ? "(compiled)" : err,
               bad[i].msg);
        fc_grammar_free(g);
    }
}

/* Two schemas' rules under prefixes, combined as a tool call would be. */
static void test_combined_rules(void)
{
    char err[256];
    const char *s0 = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}";
    const char *s1 = "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"integer\"}},\"required\":[\"q\"]}";
    char *r0 = fc_json_schema_to_rules(s0, strlen(s0), "t0-", err, sizeof err);
    char *r1 = fc_json_schema_to_rules(s1, strlen(s1), "t1-", err, sizeof err);
    CHECK(r0 && r1 && strstr(r0, "t0-root ::= ") == r0 && !strstr(r0, "ws ::="));
    CHECK(!fc_json_schema_to_rules(s0, strlen(s0), "bad prefix", err, sizeof err) && strstr(err, "prefix"));
    if (!r0 || !r1) return;
    const char *head = "root ::= \"{\\\"name\\\": \\\"weather\\\", \\\"arguments\\\": \" t0-root \"}\" | "
                       "\"{\\\"name\\\": \\\"search\\\", \\\"arguments\\\": \" t1-root \"}\"\n";
    size_t n = strlen(head) + strlen(r0) + strlen(r1) + strlen(fc_json_base_rules()) + 1;
    char *text = malloc(n);
    snprintf(text, n, "%s%s%s%s", head, r0, r1, fc_json_base_rules());
    fc_grammar *g = fc_grammar_parse(text, strlen(text), err, sizeof err);
    CHECKF(g != NULL, "%s", err);
    if (g) {
        CHECK(sentence(g, "{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\"}}"));
        CHECK(sentence(g, "{\"name\": \"search\", \"arguments\": {\"q\": 3}}"));
        CHECK(!sentence(g, "{\"name\": \"search\", \"arguments\": {\"city\": \"Paris\"}}"));
        CHECK(!sentence(g, "{\"name\": \"other\", \"arguments\": {}}"));
    }
    fc_grammar_free(g);
    free(text);
    free(r0);
    free(r1);
}

/* ---- distance to completion ---- */

/* From s, a byte that lowers the distance by exactly one exists at every
 * step, and following such bytes completes the text in `distance` bytes. */
static void check_closing(const fc_grammar *g, const char *prefix)
{
    fc_grammar_state *s = fc_grammar_state_new(g), *t = fc_grammar_state_new(g);
    CHECK(fc_grammar_state_advance(s, prefix, strlen(prefix)));
    size_t d = fc_grammar_state_distance(s), steps = 0;
    CHECKF(d != SIZE_MAX, "%s", prefix);
    while (d > 0 && d != SIZE_MAX && steps < 1000) {
        bool found = false;
        for (int b = 0; b < 256 && !found; b++) {
            unsigned char c = (unsigned char)b;
            fc_grammar_state_copy(t, s);
            if (fc_grammar_state_advance(t, &c, 1) && fc_grammar_state_distance(t) == d - 1) {
                fc_grammar_state_copy(s, t);
                found = true;
            }
        }
        CHECKF(found, "%s: no byte closes in from distance %zu", prefix, d);
        if (!found) break;
        d--;
        steps++;
    }
    CHECK(fc_grammar_state_can_end(s));
    fc_grammar_state_free(s);
    fc_grammar_state_free(t);
}

static void test_distance(void)
{
    char err[256];
    const char *schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":2},"
                         "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"long-value\",\"xy\"]},\"minItems\":2},"
                         "\"n\":{\"type\":\"integer\",\"minimum\":100}},\"required\":[\"name\",\"tags\",\"n\"]}";
    fc_grammar *g = fc_grammar_from_json_schema(schema, strlen(schema), err, sizeof err);
    CHECKF(g != NULL, "%s", err);
    if (!g) return;
    fc_grammar_state *s = fc_grammar_state_new(g);
    /* shortest: {"name":"aa","tags":["xy","xy"],"n":100} = 40 bytes */
    CHECKF(fc_grammar_state_distance(s) == 40, "distance %zu", fc_grammar_state_distance(s));
    CHECK(fc_grammar_state_advance(s, "{\"name\":\"\xc3", 10));
    /* the rest of the character, one more character, then as above */
    CHECKF(fc_grammar_state_distance(s) == 1 + 1 + 1 + 28, "distance %zu", fc_grammar_state_distance(s));
    fc_grammar_state_free(s);
    const char *prefixes[] = {"", "{\"na", "{\"name\": \"x\\u00", "{\"name\":\"abc\", \"tags\": [\"lo",
                              "{\"name\":\"\xe2\x82", "{\"name\":\"ab\",\"tags\":[\"xy\"", "{\"name\":\"ab\",\"tags\":[\"xy\",\"xy\"],\"n\":1"};
    for (size_t i = 0; i < FC_ARRAY_LEN(prefixes); i++) check_closing(g, prefixes[i]);
    fc_grammar_free(g);
    char *t = fc_json_object_grammar();
    g = fc_grammar_parse(t, strlen(t), err, sizeof err);
    check_closing(g, "{\"a\":[[{\"b\":[\"x");
    fc_grammar_free(g);
    free(t);
}

/* ---- committed schema set ---- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)k + 1);
    *n = fread(b, 1, (size_t)k, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static int load_schema_dir(char names[][300], int cap)
{
    DIR *d = opendir("tests/data/schemas");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) snprintf(names[n++], 300, "tests/data/schemas/%.255s", e->d_name);
    }
    closedir(d);
    return n;
}

static void test_schema_set(void)
{
    static char names[256][300];
    int n = load_schema_dir(names, 256), ok = 0;
    CHECKF(n >= 30, "only %d schemas in tests/data/schemas", n);
    for (int i = 0; i < n; i++) {
        size_t len;
        char *s = slurp(names[i], &len), err[256];
        fc_grammar *g = s ? fc_grammar_from_json_schema(s, len, err, sizeof err) : NULL;
        CHECKF(g != NULL, "%s: %s", names[i], s ? err : "unreadable");
        ok += g != NULL;
        fc_grammar_free(g);
        free(s);
    }
    printf("schema set: %d of %d compile\n", ok, n);
}

/* ---- masks against brute force ---- */

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int n_states_checked;

/* Compares the mask of s with per-token advancing for every token. */
static void check_mask(fc_grammar_matcher *m, const fc_grammar_vocab *v, const fc_grammar_state *s,
                       fc_grammar_state *scratch, uint64_t *mask, const char *what)
{
    fc_grammar_matcher_mask(m, s, mask);
    int32_t V = fc_grammar_vocab_size(v), bad = 0, first_bad = -1;
    for (int32_t t = 0; t < V; t++) {
        fc_grammar_state_copy(scratch, s);
        bool want = fc_grammar_matcher_accept(m, scratch, t);
        bool got = (mask[t >> 6] >> (t & 63)) & 1;
        if (want != got) { bad++; if (first_bad < 0) first_bad = t; }
    }
    n_states_checked++;
    CHECKF(bad == 0, "%s: %d tokens differ from brute force (first id %d)", what, bad, first_bad);
}

static void walk_schema(const fc_grammar_vocab *v, const char *schema, int walks, int steps)
{
    char err[256];
    fc_grammar *g = fc_grammar_from_json_schema(schema, strlen(schema), err, sizeof err);
    CHECKF(g != NULL, "%s: %s", schema, err);
    if (!g) return;
    fc_grammar_matcher *m = fc_grammar_matcher_new(g, v);
    int32_t V = fc_grammar_vocab_size(v);
    uint64_t *mask = malloc(sizeof *mask * fc_grammar_mask_words(v));
    int32_t *allowed = malloc(sizeof *allowed * (size_t)V);
    fc_grammar_state *scratch = fc_grammar_state_new(g);
    for (int w = 0; w < walks; w++) {
        fc_grammar_state *s = fc_grammar_state_new(g);
        for (int k = 0; k < steps; k++) {
            check_mask(m, v, s, scratch, mask, schema);
            int n = 0;
            for (int32_t t = 0; t < V; t++)
                if (((mask[t >> 6] >> (t & 63)) & 1) && !fc_grammar_vocab_is_eog(v, t)) allowed[n++] = t;
            if (!n) break;
            /* mostly short tokens, so walks get through the structure */
            int32_t pick = allowed[rnd() % (uint64_t)n];
            for (int tries = 0; tries < 4; tries++) {
                size_t len;
                fc_grammar_vocab_piece(v, pick, &len);
                if (len <= 2) break;
                pick = allowed[rnd() % (uint64_t)n];
            }
            CHECK(fc_grammar_matcher_accept(m, s, pick));
        }
        fc_grammar_state_free(s);
    }
    fc_grammar_state_free(scratch);
    free(allowed);
    free(mask);
    fc_grammar_matcher_free(m);
    fc_grammar_free(g);
}

static void test_masks(void)
{
    const char *path = getenv("FASTCHAT_MODEL");
    if (!path || !*path) { printf("FASTCHAT_MODEL not set: mask tests skipped\n"); return; }
    fc_tokenizer *tok = fc_tokenizer_load(path);
    CHECK(tok != NULL);
    if (!tok) return;
    fc_grammar_vocab *v = fc_grammar_vocab_new(tok);
    CHECK(v && fc_grammar_vocab_size(v) == fc_tokenizer_n_vocab(tok));
    double t0 = fc_time_sec();
    walk_schema(v, "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\","
                   "\"minimum\":0,\"maximum\":150},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                   "\"maxLength\":5},\"maxItems\":3},\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"age\"]}", 3, 14);
    walk_schema(v, "{\"enum\":[\"alpha\",\"beta\",\"alphabet\",12,null]}", 4, 4);
    walk_schema(v, "{\"type\":\"string\",\"pattern\":\"^[a-z]+@[a-z]+\\\\.(com|org)$\"}", 3, 8);
    walk_schema(v, "{\"type\":\"number\"}", 3, 5);
    walk_schema(v, "true", 3, 10);
    walk_schema(v, "{\"anyOf\":[{\"type\":\"string\",\"minLength\":3},{\"type\":\"array\",\"items\":{\"type\":\"null\"}}]}", 3, 6);
    walk_schema(v, "{\"type\":\"string\",\"maxLength\":4}", 3, 5);
    printf("masks: %d states checked against brute force over %d tokens (%.1f s)\n", n_states_checked,
           fc_grammar_vocab_size(v), fc_time_sec() - t0);
    fc_grammar_vocab_free(v);
    fc_tokenizer_free(tok);
}

/* A tiny synthetic vocabulary: masks on multi-byte splits and EOS. */
static void test_small_vocab(void)
{
    const char *pieces[] = {"{", "}", "\"", "\"a", "a\"", "\xc3", "\xa9", "\xc3\xa9", "{\"", "\"}", "", " ", "x", "ab"};
    size_t lens[FC_ARRAY_LEN(pieces)];
    for (size_t i = 0; i < FC_ARRAY_LEN(pieces); i++) lens[i] = strlen(pieces[i]);
    int32_t eog[] = {10};
    fc_grammar_vocab *v = fc_grammar_vocab_from_pieces(pieces, lens, (int32_t)FC_ARRAY_LEN(pieces), eog, 1);
    const char *schema = "{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\"}}}";
    char err[256];
    fc_grammar *g = fc_grammar_from_json_schema(schema, strlen(schema), err, sizeof err);
    fc_grammar_matcher *m = fc_grammar_matcher_new(g, v);
    fc_grammar_state *s = fc_grammar_state_new(g), *scratch = fc_grammar_state_new(g);
    uint64_t mask[1];
    const char *path[] = {"{\"", "k", "\"", ":", "\"", "\xc3", "\xa9", "a\"", "}"};
    for (size_t i = 0; i < FC_ARRAY_LEN(path); i++) {
        check_mask(m, v, s, scratch, mask, "small vocab");
        CHECK(fc_grammar_state_advance(s, path[i], strlen(path[i])));
    }
    fc_grammar_matcher_mask(m, s, mask);
    CHECK(mask[0] == (1ull << 10)); /* only EOS */
    fc_grammar_state_free(s);
    fc_grammar_state_free(scratch);
    fc_grammar_matcher_free(m);
    fc_grammar_free(g);
    fc_grammar_vocab_free(v);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_ERROR);
    test_grammar_text();
    test_schemas();
    test_small_vocab();
    test_distance();
    test_combined_rules();
    test_schema_set();
    test_masks();
    return TEST_END();
}
