#include "gateway/proxy/hold.h"
#include "base/counters.h"

static struct dlist held = {&held, &held};
static int nheld;

void hold_add(struct hold *h)
{
    dlist_add_tail(&held, &h->link);
    nheld++;
    counters->held_now = (uint64_t)nheld;
}

void hold_del(struct hold *h)
{
    dlist_del(&h->link);
    nheld--;
    counters->held_now = (uint64_t)nheld;
}

/* Those that still find nothing go back to the (new) queue, so the walk
 * below always ends. */
void hold_wake_all(void)
{
    if (dlist_empty(&held))
        return;
    struct dlist batch;
    batch.next = held.next;
    batch.prev = held.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    dlist_init(&held);
    while (!dlist_empty(&batch)) {
        struct hold *h = container_of(batch.next, struct hold, link);
        dlist_del(&h->link);
        nheld--;
        h->wake(h);
    }
    counters->held_now = (uint64_t)nheld;
}
