/* For bench/dbus.ts: times calls to org.freedesktop.machine1 through sd-bus, the library of systemd's own
 * clients (machinectl, nss-mymachines). Usage: dbus-client RUNS METHOD [NAME]; calls Manager.METHOD (with
 * the string NAME if given) RUNS times on one connection to $DBUS_SYSTEM_BUS_ADDRESS and prints the median
 * and 99th percentile in ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-bus.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int runs = atoi(argv[1]);
  const char *method = argv[2], *name = argc > 3 ? argv[3] : NULL;
  sd_bus *bus = NULL;
  int r = sd_bus_open_system(&bus);
  if (r < 0) {
    fprintf(stderr, "sd_bus_open_system: %s\n", strerror(-r));
    return 1;
  }
  double *t = calloc((size_t)runs, sizeof(double));
  for (int i = 0; i < runs; i++) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    double t0 = now_ms();
    /* No argument types: nothing is appended, name unused. */
    r = sd_bus_call_method(bus, "org.freedesktop.machine1", "/org/freedesktop/machine1", "org.freedesktop.machine1.Manager", method, &error, &reply, name ? "s" : NULL, name);
    t[i] = now_ms() - t0;
    if (r < 0) {
      fprintf(stderr, "%s: %s\n", method, error.message ? error.message : strerror(-r));
      return 1;
    }
    sd_bus_message_unref(reply);
    sd_bus_error_free(&error);
  }
  qsort(t, (size_t)runs, sizeof(double), cmp);
  printf("%.4f %.4f\n", t[runs / 2], t[runs * 99 / 100]);
  sd_bus_unref(bus);
  free(t);
  return 0;
}
