/* SPDX-License-Identifier: MIT */
/*
 * One case by name, the same way in every cmocka program (the unit tests,
 * recv_test, accept_test):
 *
 *   PROG --list [GROUP]        the case names, one a line (of one group, or all)
 *   PPBPF_TEST_CASE=CASE PROG  only the cases CASE matches
 *
 * A case's name is its test function's without "test_" (test_vectors is
 * "vectors"); CASE is such a name or a shell pattern over them (fnmatch), and
 * a leading "test_" in it is dropped too. A CASE that matches no case of the
 * group run fails with exit status 2, naming the cases there are: a filter
 * never passes having run nothing. `make test T=PROG/CASE` sets it (README,
 * "The two commands").
 *
 * Include after <cmocka.h>.
 */
#ifndef PPBPF_CASES_H
#define PPBPF_CASES_H

#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The environment variable that chooses the cases. */
#define CASE_ENV "PPBPF_TEST_CASE"
/* What a test function's name starts with, and a case's name does not. */
#define CASE_PREFIX "test_"

/* The cases run together, by a program's first argument (mode) or alone (mode NULL). */
struct case_group {
	const char *mode;
	const char *title; /* cmocka's name for the group */
	const struct CMUnitTest *tests;
	size_t n;
};

#define CASE_GROUP(mode, title, tests) { (mode), (title), (tests), sizeof(tests) / sizeof((tests)[0]) }

/* `PROG` of a path. */
static inline const char *prog_name(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');

	return slash ? slash + 1 : argv0;
}

/* A name without its "test_". */
static inline const char *case_name(const char *name)
{
	size_t n = strlen(CASE_PREFIX);

	return strncmp(name, CASE_PREFIX, n) ? name : name + n;
}

/* The pattern PPBPF_TEST_CASE holds, or NULL: every case. */
static inline const char *case_pattern(void)
{
	const char *p = getenv(CASE_ENV);

	return p && *p ? case_name(p) : NULL;
}

static inline bool case_chosen(const struct CMUnitTest *t, const char *pattern)
{
	return !pattern || !fnmatch(pattern, case_name(t->name), 0);
}

static inline bool asks_for_list(int argc, char **argv)
{
	return argc >= 2 && !strcmp(argv[1], "--list");
}

/* Whether a group before g[k] already has case t (recv_test's groups share cases). */
static inline bool listed_before(const struct case_group *g, size_t k, const struct CMUnitTest *t)
{
	for (size_t i = 0; i < k; i++)
		for (size_t j = 0; j < g[i].n; j++)
			if (!strcmp(g[i].tests[j].name, t->name))
				return true;
	return false;
}

/* The case names of these groups, each once, each printed with format ("%s\n"). */
static inline void print_cases(FILE *f, const struct case_group *g, size_t n_groups, const char *format)
{
	for (size_t k = 0; k < n_groups; k++)
		for (size_t j = 0; j < g[k].n; j++)
			if (!listed_before(g, k, &g[k].tests[j]))
				fprintf(f, format, case_name(g[k].tests[j].name));
}

/* The group of this mode, or NULL (and a message naming the groups there are). */
static inline const struct case_group *find_group(const char *prog, const struct case_group *g, size_t n_groups,
						  const char *mode)
{
	for (size_t k = 0; k < n_groups; k++)
		if (!g[k].mode || (mode && !strcmp(g[k].mode, mode)))
			return &g[k];
	fprintf(stderr, "%s: no group '%s'; the groups:", prog, mode ? mode : "");
	for (size_t k = 0; k < n_groups; k++)
		fprintf(stderr, " %s", g[k].mode);
	fputc('\n', stderr);
	return NULL;
}

/* `PROG --list [MODE]`: the exit status (2: no such group). */
static inline int list_cases(const char *prog, const struct case_group *g, size_t n_groups, const char *mode)
{
	if (mode) {
		g = find_group(prog, g, n_groups, mode);
		if (!g)
			return 2;
		n_groups = 1;
	}
	print_cases(stdout, g, n_groups, "%s\n");
	return 0;
}

/* Run the cases of g that PPBPF_TEST_CASE chooses: cmocka's exit status, or 2 where it chooses none. */
static inline int run_case_group(const char *prog, const struct case_group *g)
{
	const char *pattern = case_pattern();
	struct CMUnitTest chosen[g->n];
	size_t n = 0;

	for (size_t i = 0; i < g->n; i++)
		if (case_chosen(&g->tests[i], pattern))
			chosen[n++] = g->tests[i];
	if (!n) {
		fprintf(stderr, "%s%s%s: no case matches %s=%s; the cases:", prog, g->mode ? " " : "",
			g->mode ? g->mode : "", CASE_ENV, getenv(CASE_ENV));
		print_cases(stderr, g, 1, " %s");
		fputc('\n', stderr);
		return 2;
	}
	/* what cmocka_run_group_tests_name() expands to, on the chosen cases */
	return _cmocka_run_group_tests(g->title, chosen, n, NULL, NULL);
}

/*
 * The start of main() in a program of several groups, its first argument
 * naming one: `PROG --list [GROUP]`, a usage error (args_ok false: its
 * arguments are not `usage`), or the group to run. NULL: exit with *status.
 */
static inline const struct case_group *pick_group(const char *prog, const struct case_group *g, size_t n_groups,
						  int argc, char **argv, bool args_ok, const char *usage, int *status)
{
	*status = 2;
	if (asks_for_list(argc, argv)) {
		*status = list_cases(prog, g, n_groups, argc > 2 ? argv[2] : NULL);
		return NULL;
	}
	if (!args_ok) {
		fprintf(stderr, "usage: %s %s\n       %s --list [GROUP]    (%s=CASE: only that case)\n", prog, usage, prog,
			CASE_ENV);
		return NULL;
	}
	return find_group(prog, g, n_groups, argv[1]);
}

#define PICK_GROUP(prog, groups, argc, argv, args_ok, usage, status) \
	pick_group((prog), (groups), sizeof(groups) / sizeof((groups)[0]), (argc), (argv), (args_ok), (usage), (status))

/* main() of a unit test program: `PROG --list`, or its cases (PPBPF_TEST_CASE chooses). */
static inline int run_unit_cases(int argc, char **argv, const struct CMUnitTest *tests, size_t n)
{
	const char *prog = prog_name(argv[0]);
	const struct case_group all = { NULL, prog, tests, n };

	if (asks_for_list(argc, argv) && argc == 2)
		return list_cases(prog, &all, 1, NULL);
	if (argc != 1) {
		fprintf(stderr, "usage: %s [--list]    (%s=CASE: only that case)\n", prog, CASE_ENV);
		return 2;
	}
	return run_case_group(prog, &all);
}

#define RUN_UNIT_CASES(argc, argv, tests) run_unit_cases((argc), (argv), (tests), sizeof(tests) / sizeof((tests)[0]))

#endif
