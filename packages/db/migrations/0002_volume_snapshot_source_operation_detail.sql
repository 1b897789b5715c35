ALTER TABLE "operations" ADD COLUMN "detail" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "snapshot_id" uuid;