// A queue that never shifts an array: a head index walks forward and the
// consumed prefix is dropped once it is at least half the storage. Every
// per-direction inbox (channel messages, stream chunks) is one of these.
//
// `undefined` is how peek() and shift() say "empty", so it is never an item:
// every slot from head on holds one, every slot before head is consumed.

import { assert } from '../os/assert.js';

export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    assert(this.head >= 0, 'Fifo.length: head is never negative');
    assert(this.head <= this.items.length, 'Fifo.length: head never passes the end');
    return this.items.length - this.head;
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    const item = this.head < this.items.length ? this.items[this.head] : undefined;
    assert(this.head <= this.items.length, 'Fifo.peek: head never passes the end');
    assert(item !== undefined || this.head === this.items.length, 'Fifo.peek: a live slot holds an item');
    return item;
  }

  push(item: T): void {
    assert(item !== undefined, 'Fifo.push: undefined is not an item (it means empty)');
    this.items.push(item);
    assert(this.head < this.items.length, 'Fifo.push: the queue holds what was pushed');
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    assert(item !== undefined, 'Fifo.shift: a live slot holds an item');
    (this.items as unknown[])[this.head] = undefined; // let it be collected
    this.head++;
    if (this.head >= 32 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    assert(this.head <= this.items.length, 'Fifo.shift: head never passes the end');
    // The consumed prefix is dropped once it is 32 slots and half the storage.
    assert(this.head < 32 || this.head * 2 < this.items.length, 'Fifo.shift: the consumed prefix was not dropped');
    return item;
  }

  unshift(item: T): void {
    assert(item !== undefined, 'Fifo.unshift: undefined is not an item (it means empty)');
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
    assert(this.items[this.head] === item, 'Fifo.unshift: the item is at the head');
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    assert(this.length === 0 && this.peek() === undefined, 'Fifo.clear: nothing is left');
  }
}
