/* Many cheap leader processes for tests: forks N children that wait for a signal, prints their PIDs,
 * and ends them all (SIGKILL, then waits for them) when its standard input closes.
 *   sleepers N */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
        int n = argc == 2 ? atoi(argv[1]) : 0;
        pid_t *pids = calloc(n > 0 ? (size_t) n : 1, sizeof *pids);
        char c;

        if (n <= 0 || !pids)
                return 2;
        for (int i = 0; i < n; i++) {
                pids[i] = fork();
                if (pids[i] < 0)
                        return 1;
                if (pids[i] == 0) {
                        close(0);
                        close(1);
                        for (;;)
                                pause();
                }
                printf("%d\n", pids[i]);
        }
        fflush(stdout);
        while (read(0, &c, 1) > 0)
                ;
        for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
        for (int i = 0; i < n; i++)
                waitpid(pids[i], NULL, 0);
        return 0;
}
