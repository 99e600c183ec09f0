/* For test/sdlogin.test.ts: prints what libsystemd's sd-login says about machines (it reads machined's
   state files and the caller's cgroups, no D-Bus): every machine name with its class and ifindices, then
   the machine of each PID given as an argument. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-login.h>

int main(int argc, char **argv) {
  char **names = NULL;
  int n = sd_get_machine_names(&names);
  if (n < 0) {
    printf("sd_get_machine_names: %s\n", strerror(-n));
    return 1;
  }
  for (int i = 0; i < n; i++) {
    char *cls = NULL;
    int *ifs = NULL;
    int r = sd_machine_get_class(names[i], &cls);
    printf("machine %s class %s ifindices", names[i], r < 0 ? strerror(-r) : cls);
    int k = sd_machine_get_ifindices(names[i], &ifs);
    for (int j = 0; j < k; j++) printf(" %d", ifs[j]);
    printf("\n");
    free(cls);
    free(ifs);
    free(names[i]);
  }
  free(names);
  for (int i = 1; i < argc; i++) {
    char *m = NULL;
    int r = sd_pid_get_machine_name(atoi(argv[i]), &m);
    printf("pid %s machine %s\n", argv[i], r < 0 ? strerror(-r) : m);
    free(m);
  }
  return 0;
}
