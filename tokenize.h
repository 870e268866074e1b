/* tokenize.h: `relorac tokenize`, text into token files with the tokenizer beside them
 * (tokenize.c; docs/runtime.md "Tokenizers"). */
#ifndef RELORAC_TOKENIZE_H
#define RELORAC_TOKENIZE_H

/* Runs the command on its arguments (those after "tokenize"); prints its own help and
 * errors. Returns the exit status: 0 ok, 2 usage, I/O or tokenizer error. */
int tokenize_main(int argc, char **argv);

#endif
