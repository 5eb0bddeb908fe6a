/* A program outside the tree using the installed weft: a few threads share a counter
 * under a critical section and meet at a barrier. */
#include <pthread.h>
#include <stdio.h>

#include <weft/sync.h>

static weft_cs cs = WEFT_CS_INIT;
static weft_barrier bar;
static long counter;

static void *work(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++) {
		weft_cs_enter(&cs);
		counter++;
		weft_cs_leave(&cs);
	}
	weft_barrier_enter(&bar);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[4];
	weft_barrier_init(&bar, 4, -1);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, work, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	if (counter != 400000) {
		fprintf(stderr, "consumer: counter %ld\n", counter);
		return 1;
	}
	printf("consumer (%s): ok, counter %ld\n", argc > 1 ? argv[1] : "?", counter);
	return 0;
}
