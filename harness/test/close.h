/* close.h -- the harness tests' check that a computed figure is within eps of the expected
 * one, naming the expression when it is not. Include after cmocka.h and math.h. */
#ifndef LB_TEST_CLOSE_H
#define LB_TEST_CLOSE_H

#define assert_close(a, b, eps)                                                               \
    do {                                                                                      \
        double a_ = (a), b_ = (b);                                                            \
        if (!(fabs(a_ - b_) <= (eps)))                                                        \
            fail_msg("%s = %.12g, expected %.12g (+- %g)", #a, a_, b_, (double)(eps));        \
    } while (0)

#endif
