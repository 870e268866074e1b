/* main() of a generated training binary: the compiler's object defines relorac_model. */
#include "rt.h"

extern const RtModel relorac_model;

int main(int argc, char **argv)
{
    return rt_main(argc, argv, &relorac_model);
}
