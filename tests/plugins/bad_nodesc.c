/* bad_nodesc.c: a well-formed shared object with no spoke_plugin symbol,
 * as if SPOKE_PLUGIN(...) had been forgotten. The loader must refuse it
 * with SPOKE_ENODESC. It exports one ordinary function so the .so is not
 * empty.
 */
__attribute__((visibility("default"))) int bad_nodesc_answer(void);

int bad_nodesc_answer(void) {
  return 42;
}
